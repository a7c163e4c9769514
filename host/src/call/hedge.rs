//! Hedging (contract 0.2's `grant.hedge`): when an attempt is slow, start
//! another of the same call beside it, and take the first answer.
//!
//! Why here, inside the call's future, and not on spawned tasks: the
//! caller's closure makes futures independent of its borrow, so several
//! can be polled by one future, and dropping one cancels it at once (its
//! connection closes, its bulkhead slot is released) without a task to
//! abort or join. The race is the loop's slow path: it is entered only
//! when a grant carries a hedge the guardrails allow, and boxed by the
//! loop, so a call without one pays a branch and nothing more.
//!
//! What the strategies see: an attempt that fails while another still
//! runs is counted (outcomes, metrics, history as [`Step::Hedged`]) but not
//! passed to `on-error`; the failure that leaves nothing running ends the
//! race and goes through decide and guard like any other. Attempts still
//! running when one answers are dropped and recorded as
//! [`Step::Cancelled`].

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::context::CallState;
use super::metrics::{self, HedgeOutcome};
use super::{AttemptError, within};
use crate::api::{Attempt, AttemptRecord, Step};
use crate::failure::{Classify, ErrorKind, Failure};
use crate::pipeline::bulkhead::Slot;
use crate::pipeline::in_flight::Ticket;

/// The first attempt of a race, admitted and about to start.
pub(super) struct FirstAttempt {
    pub(super) number: u32,
    pub(super) began: Instant,
    pub(super) span: Span,
    pub(super) slot: Option<Slot>,
    /// The grants' attempt timeout (each attempt's own is computed from
    /// it when it starts).
    pub(super) granted_timeout: Option<Duration>,
    /// Routing: the upstream every attempt of the race uses.
    pub(super) upstream: Option<u32>,
}

/// The hedge the guardrails allow: every `after`, one more attempt, at
/// most `max`.
#[derive(Clone, Copy)]
pub(super) struct Plan {
    pub(super) after: Duration,
    pub(super) max: u32,
}

/// How a race ended.
pub(super) enum Raced<T, E> {
    /// An attempt answered: the call returns `value`.
    Won {
        value: T,
        ended: Instant,
        took: Duration,
        span: Span,
    },
    /// Every attempt failed; `last` is the one the strategies decide on.
    Lost(LastFailure<E>),
}

/// The failure that ended a race.
pub(super) struct LastFailure<E> {
    /// The attempt that failed last.
    pub(super) number: u32,
    /// The highest attempt number the race started.
    pub(super) started: u32,
    pub(super) failure: Failure,
    pub(super) error: Option<E>,
    pub(super) began: Instant,
    pub(super) took: Duration,
    pub(super) span: Span,
}

/// One attempt running in the race.
struct Runner<R> {
    number: u32,
    began: Instant,
    span: Span,
    /// A hedge (not the race's first attempt): counted in `mender_hedges_total`.
    hedge: bool,
    run: Pin<Box<R>>,
}

/// What woke the race.
enum Woke<T, E> {
    /// The runner at this index ended.
    Ended(usize, Result<T, AttemptError<E>>, Instant),
    /// Time to start the next hedge.
    HedgeDue,
}

/// An attempt about to join the race.
struct Starting {
    number: u32,
    began: Instant,
    span: Span,
    slot: Option<Slot>,
    /// A hedge's own place in the in-flight count (contract 0.2); the
    /// first attempt's is the call's.
    ticket: Option<Ticket>,
    hedge: bool,
}

/// Starts an attempt under its span; the future holds its slot and its
/// in-flight ticket until it ends or is dropped.
fn start<T, E, F, Fut>(
    call: &CallState<'_>,
    attempt: &mut F,
    starting: Starting,
    granted_timeout: Option<Duration>,
    upstream: Option<u32>,
) -> Runner<impl Future<Output = (Result<T, AttemptError<E>>, Instant)> + use<T, E, F, Fut>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Starting {
        number,
        began,
        span,
        slot,
        ticket,
        hedge,
    } = starting;
    let timeout = call.attempt_timeout(granted_timeout, began);
    let fut = span.in_scope(|| {
        attempt(Attempt {
            number,
            timeout,
            upstream,
        })
    });
    let run = async move {
        let result = within(began, timeout, fut).await;
        let ended = Instant::now();
        drop((slot, ticket));
        (result, ended)
    };
    Runner {
        number,
        began,
        hedge,
        run: Box::pin(run.instrument(span.clone())),
        span,
    }
}

/// Runs `first`, and a hedge beside it every `plan.after` while nothing
/// has answered, until one answers or every one started has failed.
pub(super) async fn race<T, E, F, Fut>(
    call: &mut CallState<'_>,
    attempt: &mut F,
    first: FirstAttempt,
    plan: Plan,
) -> Raced<T, E>
where
    E: Classify,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let granted_timeout = first.granted_timeout;
    let upstream = first.upstream;
    let mut last_number = first.number;
    let first = Starting {
        number: first.number,
        began: first.began,
        span: first.span,
        slot: first.slot,
        ticket: None,
        hedge: false,
    };
    let mut timer = first
        .began
        .checked_add(plan.after)
        .map(|at| Box::pin(tokio::time::sleep_until(at)));
    let mut runners = vec![start(call, attempt, first, granted_timeout, upstream)];
    let mut hedges = 0;
    loop {
        let woke = poll_fn(|cx| {
            for (i, r) in runners.iter_mut().enumerate() {
                if let Poll::Ready((result, ended)) = r.run.as_mut().poll(cx) {
                    return Poll::Ready(Woke::Ended(i, result, ended));
                }
            }
            match timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Woke::HedgeDue),
                _ => Poll::Pending,
            }
        })
        .await;
        match woke {
            Woke::HedgeDue => {
                timer = None;
                let now = Instant::now();
                // No hedge past the deadline, and none queued for a
                // bulkhead slot: a hedge is worth starting now or not at all.
                if call
                    .deadline_left_at(now)
                    .is_some_and(|left| left.is_zero())
                {
                    continue;
                }
                let Some(slot) = call.free_slot() else {
                    continue;
                };
                hedges += 1;
                last_number += 1;
                let hedge = Starting {
                    number: last_number,
                    began: now,
                    span: call.attempt_span(last_number),
                    slot,
                    ticket: Some(Ticket::reserved(&call.cx.pipeline.stats)),
                    hedge: true,
                };
                runners.push(start(call, attempt, hedge, granted_timeout, upstream));
                if hedges < plan.max {
                    timer = now
                        .checked_add(plan.after)
                        .map(|at| Box::pin(tokio::time::sleep_until(at)));
                }
            }
            Woke::Ended(i, result, ended) => {
                let r = runners.swap_remove(i);
                let took = ended.saturating_duration_since(r.began);
                let outcome = |won| match (r.hedge, won) {
                    (false, _) => None,
                    (true, true) => Some(HedgeOutcome::Won),
                    (true, false) => Some(HedgeOutcome::Failed),
                };
                let (failure, error) = match result {
                    Ok(value) => {
                        if let Some(o) = outcome(true) {
                            metrics::hedge(&call.cx.pipeline.service, o);
                        }
                        // Drop the others first (their connections close,
                        // their slots free up), then write them down.
                        let cancelled: Vec<_> = runners
                            .into_iter()
                            .map(|o| (o.number, o.began, o.span, o.hedge))
                            .collect();
                        for (number, began, span, hedge) in cancelled {
                            call.push_cancelled(
                                number,
                                (began, ended),
                                &span,
                                (r.number, upstream),
                                hedge,
                            );
                        }
                        return Raced::Won {
                            value,
                            ended,
                            took,
                            span: r.span,
                        };
                    }
                    Err(AttemptError::Upstream(e)) => (e.classify(), Some(e)),
                    Err(AttemptError::Timeout(t)) => (
                        Failure::new(ErrorKind::Timeout, format!("attempt timed out after {t:?}")),
                        None,
                    ),
                };
                if let Some(o) = outcome(false) {
                    metrics::hedge(&call.cx.pipeline.service, o);
                }
                if runners.is_empty() {
                    return Raced::Lost(LastFailure {
                        number: r.number,
                        started: last_number,
                        failure,
                        error,
                        began: r.began,
                        took,
                        span: r.span,
                    });
                }
                // Another attempt still runs: count this one, but leave
                // the decision to whichever ends the race.
                let event = call.failure_event(r.number, failure, r.began + took);
                let spent = (r.began, took);
                call.push(&r.span, &event, r.number, upstream, spent, Step::Hedged);
            }
        }
    }
}

impl CallState<'_> {
    /// The plan for a grant's hedge on attempt `number`, if the
    /// guardrails allow one (an idempotent call, `max-hedges`,
    /// `max-attempts`).
    pub(super) fn hedge_plan(
        &self,
        hedge: crate::plugin::bindings::wit::Hedge,
        number: u32,
    ) -> Option<Plan> {
        let g = &self.cx.pipeline.guardrails;
        let max = g.hedges(self.spec.idempotent, hedge.max, number);
        (max > 0).then(|| Plan {
            after: Duration::from_millis(hedge.after),
            max,
        })
    }

    /// A `max-in-flight` slot for a hedge, if one is free now: `Some(None)`
    /// without a limit, `None` when the bulkhead is full.
    fn free_slot(&self) -> Option<Option<Slot>> {
        match &self.cx.pipeline.guardrails.in_flight {
            None => Some(None),
            Some(limit) => self.cx.pipeline.bulkhead.try_enter(limit.max).map(Some),
        }
    }

    /// Records attempt `number`, dropped unfinished at `ended` because
    /// attempt `answered` answered first.
    fn push_cancelled(
        &mut self,
        number: u32,
        (began, ended): (Instant, Instant),
        span: &Span,
        (answered, upstream): (u32, Option<u32>),
        hedge: bool,
    ) {
        let service = &self.cx.pipeline.service;
        if hedge {
            metrics::hedge(service, HedgeOutcome::Cancelled);
        }
        super::spans::cancelled(span, answered);
        tracing::debug!(parent: span, service = %service, attempt = number, answered, "attempt cancelled: another answered first");
        self.history.push(AttemptRecord {
            attempt: number,
            started: began.saturating_duration_since(self.started),
            took: ended.saturating_duration_since(began),
            kind: ErrorKind::Cancelled,
            message: format!("cancelled: attempt {answered} answered first"),
            status: None,
            upstream: upstream.and_then(|i| {
                let names = self.upstream_names()?;
                names.get(usize::try_from(i).ok()?).cloned()
            }),
            tags: Vec::new(),
            step: Step::Cancelled { answered },
        });
    }
}
