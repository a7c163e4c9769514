//! The path of one call, start to outcome, top to bottom:
//!
//! 1. **admit** (`admission.rs`): may the attempt start? Leases answer
//!    without a Wasm call; strategies with an `admit` hook are asked.
//! 2. **attempt**: the caller's closure, under the attempt's timeout.
//! 3. **classify**: its error becomes a [`Failure`] (`Classify`).
//! 4. **decide** (`decide.rs`): the failure becomes a redacted event; the
//!    strategies are asked in order until one answers.
//! 5. **guard** (`decide.rs`): the guardrails and the retry budget judge a
//!    retry or a credential refresh.
//! 6. **wait / refresh / fallback**, or give up (`outcome.rs`: fallback
//!    handlers, then the error with the whole history).
//!
//! Each call is a `mender.call` span and each attempt a `mender.attempt`
//! span under it (`spans.rs`); the caller's closure runs in its attempt's.
//! A grant's hedge runs several attempts at once (`hedge.rs`), the first
//! answer winning.
//!
//! [`run`] (which runs the caller's closure) and `after_failure` (which
//! holds the caller's error) are the generic parts; everything that talks
//! to plugins is in non-generic helpers, so each call site does not get
//! its own copy. The loop sees the runtime only
//! through a [`CallContext`], and its strategies only through the
//! pipeline's `Strategy`/`Fallback` traits, so `tests.rs` drives it with
//! plain-Rust deciders.

pub(crate) mod activity;
mod admission;
mod context;
mod decide;
mod hedge;
mod metrics;
mod outcome;
mod spans;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use crate::api::{Attempt, CallError, CallSpec, Payload, Reply, Step};
use crate::failure::{Classify, ErrorKind, Failure};
use admission::{Admitted, Gate, Granted};
pub(crate) use context::CallContext;
use context::CallState;
use decide::Next;
pub(crate) use metrics::describe as describe_metrics;

/// Runs `attempt` under the pipeline `cx` gives for `spec` until it
/// succeeds, a fallback answers, or the pipeline gives up.
pub(crate) async fn run<'a, T, E, F, Fut>(
    cx: impl FnOnce(&CallSpec) -> CallContext<'a>,
    spec: CallSpec,
    mut attempt: F,
) -> Result<Reply<T>, CallError<E>>
where
    T: Payload,
    E: Classify,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // The call's span is entered only around what runs in it directly (the
    // wait between attempts, the fallback and the give-up); each attempt's
    // span names it as parent. Wrapping the whole loop in `instrument`
    // would move this whole future into the wrapper on every call.
    let mut call = CallState::start(cx(&spec), &spec);
    let mut number = 1;
    // The clock is read once before an attempt and once after it, and
    // whatever else needs the time in between (a lease's expiry, the
    // deadline left, the attempt's timeout) uses those readings: on
    // the happy path these reads were most of the host's own cost.
    // The first attempt starts when the call did.
    let mut now = call.started;
    loop {
        // Admission, the attempt, its classification and what the
        // strategies and guardrails made of it, under the attempt's
        // span; the wait before the next attempt is the call's.
        let mut span = call.attempt_span(number);
        // 1-3: admit, attempt, classify. Leases and a free bulkhead
        // slot admit at once; asking a plugin or queueing is the slow
        // path, boxed so that its state does not make every call's
        // future (moved on each poll's way in) larger.
        let gate = match call.admit_leased(now) {
            Ok(granted) => Gate::Open(granted),
            Err(from) => {
                let gate = Box::pin(call.admit(number, from));
                let gate = gate.instrument(span.clone()).await;
                now = Instant::now();
                gate
            }
        };
        let admitted = match gate {
            Gate::Open(granted) => match call.try_bulkhead(granted) {
                Some(admitted) => Ok(admitted),
                None => {
                    let queued = Box::pin(call.queue_for_bulkhead(granted));
                    let admitted = queued.instrument(span.clone()).await;
                    now = Instant::now();
                    admitted
                }
            },
            Gate::Closed(failure) => Err(failure),
        };
        // Routing: which of the call's upstreams this attempt uses (`None`
        // when it names none, at no cost).
        let routed = admitted.as_ref().ok().and_then(|a| a.granted.upstream);
        let upstream = call.upstream_for(routed);
        // `failed`: the attempt the strategies decide on; only a hedge
        // race (below) makes it other than `number`.
        let (failed, failure, last_error, began, took) = match admitted {
            Ok(Admitted {
                granted:
                    Granted {
                        timeout,
                        hedge: Some(hedge),
                        ..
                    },
                slot,
            }) if let Some(plan) = call.hedge_plan(hedge, number) => {
                // Hedged: several attempts at once (all on this attempt's
                // upstream), the slow path.
                let first = hedge::FirstAttempt {
                    number,
                    began: now,
                    span: span.clone(),
                    slot,
                    granted_timeout: timeout,
                    upstream,
                };
                match Box::pin(hedge::race(&mut call, &mut attempt, first, plan)).await {
                    hedge::Raced::Won {
                        value,
                        ended,
                        took,
                        span,
                    } => return Ok(call.succeed(value, ended, took, &span)),
                    hedge::Raced::Lost(last) => {
                        span = last.span;
                        number = last.started;
                        (last.number, last.failure, last.error, last.began, last.took)
                    }
                }
            }
            Ok(Admitted { granted, slot }) => {
                let began = now;
                let timeout = call.attempt_timeout(granted.timeout, began);
                let fut = span.in_scope(|| {
                    attempt(Attempt {
                        number,
                        timeout,
                        upstream,
                    })
                });
                let result = within(began, timeout, fut).instrument(span.clone()).await;
                let ended = Instant::now();
                let took = ended.saturating_duration_since(began);
                drop(slot);
                match result {
                    Ok(value) => return Ok(call.succeed(value, ended, took, &span)),
                    Err(AttemptError::Upstream(e)) => (number, e.classify(), Some(e), began, took),
                    Err(AttemptError::Timeout(t)) => (
                        number,
                        Failure::new(ErrorKind::Timeout, format!("attempt timed out after {t:?}")),
                        None,
                        began,
                        took,
                    ),
                }
            }
            Err(failure) => (number, failure, None, now, Duration::ZERO),
        };

        // 4-6: decide, guard, then wait, fall back or give up: the slow
        // path, in one boxed future so that none of its state (the event,
        // the verdict, the wait's timer) makes every call's future larger.
        let failed = Failed {
            number: failed,
            upstream,
            failure,
            last_error,
            began,
            took,
        };
        match Box::pin(after_failure(&mut call, number, failed, span)).await {
            AfterFailure::Again => {
                now = Instant::now();
                number += 1;
            }
            AfterFailure::Done(result) => return result,
        }
    }
}

/// A failed attempt, for the strategies to decide on.
struct Failed<E> {
    /// The attempt's number (a hedge race's loser may not be the latest).
    number: u32,
    upstream: Option<u32>,
    failure: Failure,
    /// The caller's own error, if the attempt returned one.
    last_error: Option<E>,
    began: Instant,
    took: Duration,
}

/// What the failure path made of a failed attempt.
enum AfterFailure<T, E> {
    /// Another attempt, now (any wait is over).
    Again,
    /// The call's answer: a fallback's, or the error.
    Done(Result<Reply<T>, CallError<E>>),
}

/// Steps 4-6 for attempt `failed` of a call whose latest attempt is
/// `number`, under that attempt's `span`.
async fn after_failure<T: Payload, E>(
    call: &mut CallState<'_>,
    number: u32,
    Failed {
        number: failed,
        upstream,
        failure,
        last_error,
        began,
        took,
    }: Failed<E>,
    span: tracing::Span,
) -> AfterFailure<T, E> {
    // 4: decide.
    let ended = began + took;
    let (event, verdict) = call
        .on_failure(failed, upstream, failure, ended)
        .instrument(span.clone())
        .await;

    // 5-6: guard, then wait, refresh, fall back or give up.
    let next = call.guard(number, verdict).instrument(span.clone()).await;
    match next {
        Next::Again { step, wait } => {
            call.push(&span, &event, failed, upstream, (began, took), step);
            drop(span);
            if !wait.is_zero() {
                let wait = tokio::time::sleep(wait);
                wait.instrument(call.span.clone()).await;
            }
            AfterFailure::Again
        }
        Next::Fallback { by, answer } => {
            let step = Step::Fallback { by: by.to_string() };
            call.push(&span, &event, failed, upstream, (began, took), step);
            drop(span);
            let _in_call = call.span.clone().entered();
            AfterFailure::Done(call.answer_with(&by, answer, &event, last_error))
        }
        Next::GiveUp(cause) => {
            // Said once, for the history and the error alike.
            let reason = cause.to_string();
            let step = Step::Fail {
                reason: reason.clone(),
                cause: cause.clone(),
            };
            call.push(&span, &event, failed, upstream, (began, took), step);
            drop(span);
            let call_span = call.span.clone();
            let give_up = call.give_up((cause, reason), &event, last_error);
            AfterFailure::Done(give_up.instrument(call_span).await)
        }
    }
}

/// How an attempt failed before it could be classified.
enum AttemptError<E> {
    Upstream(E),
    Timeout(Duration),
}

/// Awaits `fut`, started at `began`, for at most `timeout`.
async fn within<T, E>(
    began: Instant,
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, AttemptError<E>> {
    let mut fut = std::pin::pin!(fut);
    // A limit past what the clock can represent is none.
    let Some((limit, at)) = timeout.and_then(|t| Some((t, began.checked_add(t)?))) else {
        return fut.await.map_err(AttemptError::Upstream);
    };
    // The timer is made (boxed, from the reading the loop already has)
    // only when the attempt is pending: an attempt that answers at its
    // first poll, the happy path in process, neither builds one nor
    // carries its size in every call's future.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(AttemptError::Upstream));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        timer
            .as_mut()
            .poll(cx)
            .map(|()| Err(AttemptError::Timeout(limit)))
    })
    .await
}

/// The smaller of two optional limits (`None`: no limit).
fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
