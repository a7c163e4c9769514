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
//!
//! [`run`] is the only generic part (it runs the caller's closure);
//! everything that talks to plugins is in non-generic helpers, so each
//! call site does not get its own copy. The loop sees the runtime only
//! through a [`CallContext`], and its strategies only through the
//! pipeline's `Strategy`/`Fallback` traits, so `tests.rs` drives it with
//! plain-Rust deciders.

pub(crate) mod activity;
mod admission;
mod context;
mod decide;
mod metrics;
mod outcome;
mod spans;
#[cfg(test)]
mod tests;
mod window;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::api::{Attempt, CallError, CallSpec, Payload, Reply, Step};
use crate::failure::{Classify, ErrorKind, Failure};
use admission::{Admitted, Gate};
pub(crate) use context::CallContext;
use context::CallState;
use decide::Next;
pub(crate) use metrics::describe as describe_metrics;

/// Runs `attempt` under the pipeline in `cx` until it succeeds, a fallback
/// answers, or the pipeline gives up.
pub(crate) async fn run<T, E, F, Fut>(
    cx: CallContext<'_>,
    spec: &CallSpec,
    mut attempt: F,
) -> Result<Reply<T>, CallError<E>>
where
    T: Payload,
    E: Classify,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut call = CallState::start(cx, spec);
    let call_span = call.span.clone();
    async move {
        let mut number = 1;
        loop {
            // Admission, the attempt, its classification and what the
            // strategies and guardrails made of it, under the attempt's
            // span; the wait before the next attempt is the call's.
            let span = call.attempt_span(number);
            // 1-3: admit, attempt, classify.
            let admitted = match call.admit(number).instrument(span.clone()).await {
                Gate::Open { timeout } => {
                    call.enter_bulkhead(timeout).instrument(span.clone()).await
                }
                Gate::Closed(failure) => Err(failure),
            };
            let (failure, last_error, began, took) = match admitted {
                Ok(Admitted { timeout, slot }) => {
                    let timeout = call.attempt_timeout(timeout);
                    let began = Instant::now();
                    let fut = span.in_scope(|| attempt(Attempt { number, timeout }));
                    let result = within(timeout, fut).instrument(span.clone()).await;
                    let took = began.elapsed();
                    drop(slot);
                    match result {
                        Ok(value) => return Ok(call.succeed(value, took, &span)),
                        Err(AttemptError::Upstream(e)) => (e.classify(), Some(e), began, took),
                        Err(AttemptError::Timeout(t)) => (
                            Failure::new(
                                ErrorKind::Timeout,
                                format!("attempt timed out after {t:?}"),
                            ),
                            None,
                            began,
                            took,
                        ),
                    }
                }
                Err(failure) => (failure, None, Instant::now(), Duration::ZERO),
            };

            // 4: decide.
            let (event, verdict) = call
                .on_failure(number, failure)
                .instrument(span.clone())
                .await;

            // 5-6: guard, then wait, refresh, fall back or give up.
            match call.guard(number, verdict).instrument(span.clone()).await {
                Next::Again { step, wait } => {
                    call.push(&span, &event, number, began, took, step);
                    drop(span);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    number += 1;
                }
                Next::Fallback { by, answer } => {
                    let step = Step::Fallback { by: by.to_string() };
                    call.push(&span, &event, number, began, took, step);
                    drop(span);
                    return call.answer_with(&by, answer, &event, last_error);
                }
                Next::GiveUp(cause) => {
                    let step = Step::Fail {
                        reason: cause.to_string(),
                        cause: cause.clone(),
                    };
                    call.push(&span, &event, number, began, took, step);
                    drop(span);
                    return call.give_up(cause, &event, last_error).await;
                }
            }
        }
    }
    .instrument(call_span)
    .await
}

/// How an attempt failed before it could be classified.
enum AttemptError<E> {
    Upstream(E),
    Timeout(Duration),
}

/// Awaits `fut`, for at most `timeout`.
async fn within<T, E>(
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, AttemptError<E>> {
    match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r.map_err(AttemptError::Upstream),
            Err(_) => Err(AttemptError::Timeout(t)),
        },
        None => fut.await.map_err(AttemptError::Upstream),
    }
}

/// The smaller of two optional limits (`None`: no limit).
fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
