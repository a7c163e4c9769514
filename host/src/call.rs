//! The path of a call, start to outcome:
//! admission (`admission.rs`) → attempt → classify → decide → guardrails → wait / refresh /
//! fallback → outcome.
//!
//! [`Runtime::call`] is the only generic part (it runs the caller's
//! closure); everything that talks to plugins is in non-generic helpers, so
//! each call site does not get its own copy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::admission::Gate;
use crate::bindings::wit;
use crate::clock::duration_ms;
use crate::config::OnFault;
use crate::event::{Classify, ErrorKind, Failure};
use crate::pipeline::Pipeline;
use crate::runtime::Runtime;
use crate::spec::{Attempt, AttemptRecord, CallError, CallSpec, Payload, Reply, ServedBy, Step};

/// What the strategies decided about a failed attempt.
enum Verdict {
    Retry {
        by: Arc<str>,
        delay: Duration,
    },
    Refresh {
        by: Arc<str>,
    },
    Fallback {
        by: Arc<str>,
        answer: wit::FallbackAnswer,
    },
    Fail {
        reason: String,
    },
}

/// A call in progress: what the non-generic helpers need.
pub(crate) struct Flight<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) p: Arc<Pipeline>,
    pub(crate) spec: &'a CallSpec,
    pub(crate) started: Instant,
    pub(crate) deadline: Option<Instant>,
    history: Vec<AttemptRecord>,
    refreshes: u32,
}

impl Runtime {
    /// Runs `attempt` under the service's pipeline until it succeeds, a
    /// fallback answers, or the pipeline gives up.
    ///
    /// ```no_run
    /// # async fn demo(rt: mender::Runtime) {
    /// use mender::{CallSpec, Failure, ErrorKind};
    /// let reply = rt
    ///     .call(CallSpec::new("github", "list_issues").idempotent(true), |attempt| async move {
    ///         // ... the real call; errors must implement `Classify`
    ///         Ok::<String, Failure>(format!("issues (attempt {})", attempt.number))
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub async fn call<T, E, F, Fut>(
        &self,
        spec: CallSpec,
        mut attempt: F,
    ) -> Result<Reply<T>, CallError<E>>
    where
        T: Payload,
        E: Classify,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let p = self.pipeline(&spec.service);
        let started = Instant::now();
        // A deadline too far away for the clock to represent (a config's
        // "500000000000y", `Duration::MAX`) is no deadline: saturate, never
        // overflow.
        let deadline = spec
            .deadline
            .or(p.guardrails.deadline)
            .and_then(|d| started.checked_add(d));
        let mut f = Flight {
            rt: self,
            p,
            spec: &spec,
            started,
            deadline,
            history: Vec::new(),
            refreshes: 0,
        };
        f.count_call();
        let mut number = 1;
        loop {
            let (failure, last_error, began, took) = match f.admit(number).await {
                Gate::Open { timeout } => {
                    let timeout = min_opt(
                        min_opt(timeout, f.p.guardrails.attempt_timeout),
                        spec.attempt_timeout,
                    );
                    let timeout = min_opt(timeout, f.deadline_left());
                    let began = Instant::now();
                    let fut = attempt(Attempt { number, timeout });
                    let result = match timeout {
                        Some(t) => match tokio::time::timeout(t, fut).await {
                            Ok(r) => r.map_err(Upstream),
                            Err(_) => Err(Timeout(t)),
                        },
                        None => fut.await.map_err(Upstream),
                    };
                    let took = began.elapsed();
                    match result {
                        Ok(value) => {
                            f.p.stats.record_success(duration_ms(took));
                            // Only an idempotent call's answer can stand in
                            // for a later one: replaying a write's result
                            // would claim a write that never happened.
                            if f.p.records_results && spec.idempotent {
                                f.record(&value);
                            }
                            return Ok(Reply {
                                value,
                                served_by: ServedBy::Upstream,
                                history: f.history,
                            });
                        }
                        Err(Upstream(e)) => (e.classify(), Some(e), began, took),
                        Err(Timeout(t)) => (
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
                Gate::Closed(failure) => (failure, None, Instant::now(), Duration::ZERO),
            };

            let (event, verdict) = f.on_failure(number, failure).await;
            let step = match verdict {
                Verdict::Retry { by, delay } => {
                    match f.p.guardrails.check_retry(
                        number,
                        spec.idempotent,
                        delay,
                        f.deadline_left(),
                    ) {
                        Ok(delay) => match f.spend_retry() {
                            Ok(()) => Ok(Step::Retry {
                                by: by.to_string(),
                                delay,
                            }),
                            Err(r) => Err(format!("{by} asked to retry; guardrail: {r}")),
                        },
                        Err(refusal) => Err(format!("{by} asked to retry; guardrail: {refusal}")),
                    }
                }
                Verdict::Refresh { by } => f
                    .refresh(number, &by)
                    .await
                    .map(|()| Step::RefreshCredentials { by: by.to_string() }),
                Verdict::Fallback { by, answer } => {
                    f.push(
                        &event,
                        number,
                        began,
                        took,
                        Step::Fallback { by: by.to_string() },
                    );
                    return f.answer_with(&by, answer, &event, last_error);
                }
                Verdict::Fail { reason } => Err(reason),
            };
            match step {
                Ok(step) => {
                    let wait = match &step {
                        Step::Retry { delay, .. } => *delay,
                        _ => Duration::ZERO,
                    };
                    f.push(&event, number, began, took, step);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    number += 1;
                }
                Err(reason) => {
                    f.push(
                        &event,
                        number,
                        began,
                        took,
                        Step::Fail {
                            reason: reason.clone(),
                        },
                    );
                    return f.give_up(reason, &event, last_error).await;
                }
            }
        }
    }
}

/// How an attempt failed before it could be classified.
enum AttemptError<E> {
    Upstream(E),
    Timeout(Duration),
}
use AttemptError::{Timeout, Upstream};

pub(crate) fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Flight<'_> {
    pub(crate) fn deadline_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.rt.inner.shared.now_ms()
    }

    fn result_key(&self) -> &str {
        self.spec
            .result_key
            .as_deref()
            .unwrap_or(&self.spec.operation)
    }

    fn record<T: Payload>(&self, value: &T) {
        if let Some(body) = value.encode() {
            let now = self.now_ms();
            self.rt
                .inner
                .results
                .record(&self.p.service, self.result_key(), body, now);
        }
    }

    fn tags(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        self.spec.tags.iter().chain(extra).cloned().collect()
    }

    /// Counts a failed attempt, builds its (redacted) event, and asks the
    /// strategies what to do.
    async fn on_failure(&self, number: u32, failure: Failure) -> (wit::ErrorEvent, Verdict) {
        if failure.kind.reached_upstream() {
            self.p.stats.record_failure(failure.kind);
            for slot in &self.p.strategies {
                slot.lease.on_failure();
            }
        }
        let event = wit::ErrorEvent {
            service: self.p.service.to_string(),
            operation: self.spec.operation.to_string(),
            kind: failure.kind.into(),
            message: self.rt.inner.redactor.redact(&failure.message),
            status: failure.status,
            retry_after: failure.retry_after.map(duration_ms),
            attempt: number,
            elapsed: duration_ms(self.started.elapsed()),
            deadline_left: self.deadline_left().map(duration_ms),
            idempotent: self.spec.idempotent,
            tags: self.tags(&failure.tags),
        };
        tracing::debug!(
            service = %event.service, operation = %event.operation, attempt = number,
            kind = %failure.kind, status = ?event.status, message = %event.message,
            "attempt failed"
        );
        let verdict = self.decide(&event).await;
        (event, verdict)
    }

    /// Strategies in order until one answers other than `pass`.
    async fn decide(&self, event: &wit::ErrorEvent) -> Verdict {
        for slot in self.p.strategies.iter().filter(|s| s.decides()) {
            let recent = slot.cursor.take(&self.p.stats, &slot.lease);
            let by = slot.plugin.name.clone();
            let decision = match slot
                .plugin
                .on_error_within(self.deadline_left(), &self.p.service, event, &recent)
                .await
            {
                Ok(d) => d,
                Err(fault) => match slot.plugin.on_fault {
                    OnFault::FailOpen => continue,
                    OnFault::FailClosed => {
                        return Verdict::Fail {
                            reason: fault.to_string(),
                        };
                    }
                },
            };
            tracing::debug!(service = %event.service, attempt = event.attempt, plugin = %by, decision = ?decision, "decision");
            return match decision {
                wit::Decision::Pass => continue,
                wit::Decision::Retry(ms) => Verdict::Retry {
                    by,
                    delay: Duration::from_millis(ms),
                },
                wit::Decision::Fallback(answer) => Verdict::Fallback { by, answer },
                wit::Decision::Fail(reason) => Verdict::Fail {
                    reason: format!("{by}: {reason}"),
                },
                wit::Decision::RefreshCredentials => Verdict::Refresh { by },
            };
        }
        let reason = if self.p.strategies.iter().any(|s| s.decides()) {
            "no strategy chose to retry"
        } else {
            "no strategy with an on-error hook is configured for this service"
        };
        Verdict::Fail {
            reason: format!("{reason} ({})", ErrorKind::from_wit(event.kind)),
        }
    }

    /// Refreshes credentials for a retry, within the guardrails.
    async fn refresh(&mut self, number: u32, by: &str) -> Result<(), String> {
        let g = &self.p.guardrails;
        if self.refreshes >= g.max_credential_refreshes {
            return Err(format!(
                "{by} asked to refresh credentials; guardrail: max-credential-refreshes ({}) reached",
                g.max_credential_refreshes
            ));
        }
        // An auth failure means the upstream refused before acting, so a
        // retry after a refresh is safe even for non-idempotent operations;
        // attempts and the deadline still bound it.
        g.check_retry(number, true, Duration::ZERO, self.deadline_left())
            .map_err(|r| format!("{by} asked to refresh credentials; guardrail: {r}"))?;
        let Some(provider) = self.rt.inner.credentials.get(&*self.p.service) else {
            return Err(format!(
                "{by} asked to refresh credentials, but no credential provider is registered for `{}`",
                self.p.service
            ));
        };
        self.refreshes += 1;
        provider.refresh(&self.p.service).await.map_err(|e| {
            format!(
                "credential refresh failed: {}",
                self.rt.inner.redactor.redact(&e)
            )
        })
    }

    fn push(
        &mut self,
        event: &wit::ErrorEvent,
        number: u32,
        began: Instant,
        took: Duration,
        step: Step,
    ) {
        tracing::info!(
            service = %event.service, operation = %event.operation, attempt = number,
            kind = %ErrorKind::from_wit(event.kind), step = ?step, "attempt handled"
        );
        self.history.push(AttemptRecord {
            attempt: number,
            started: began.saturating_duration_since(self.started),
            took,
            kind: ErrorKind::from_wit(event.kind),
            message: event.message.clone(),
            status: event.status,
            step,
        });
    }

    /// Answers the caller with a plugin's fallback.
    fn answer_with<T: Payload, E>(
        self,
        by: &str,
        answer: wit::FallbackAnswer,
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        match T::decode(&answer.body) {
            Ok(value) => Ok(Reply {
                value,
                served_by: ServedBy::Fallback {
                    plugin: by.to_owned(),
                    age: answer.age.map(Duration::from_millis),
                },
                history: self.history,
            }),
            Err(e) => {
                let reason = format!("fallback from {by} could not be decoded: {e}");
                self.fail(reason, event, last_error)
            }
        }
    }

    /// The strategies gave up: ask the fallback handlers, then fail.
    async fn give_up<T: Payload, E>(
        self,
        reason: String,
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        for handler in &self.p.fallbacks {
            let recorded = handler
                .records_results
                .then(|| {
                    self.rt
                        .inner
                        .results
                        .last(&self.p.service, self.result_key(), self.now_ms())
                })
                .flatten()
                .map(|(body, age)| wit::RecordedResult { body, age });
            let served = handler
                .serve_within(
                    self.deadline_left(),
                    &self.p.service,
                    event,
                    recorded.as_ref(),
                )
                .await;
            match served {
                Ok(Some(answer)) => {
                    if let Some(last) = self.history.last() {
                        tracing::info!(service = %event.service, plugin = %handler.name, after = ?last.step, "fallback served");
                    }
                    let by = handler.name.clone();
                    return self.answer_with(&by, answer, event, last_error);
                }
                Ok(None) => {}
                Err(fault) => {
                    if handler.on_fault == OnFault::FailClosed {
                        return self.fail(format!("{reason}; then {fault}"), event, last_error);
                    }
                }
            }
        }
        self.fail(reason, event, last_error)
    }

    fn fail<T, E>(
        self,
        reason: String,
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        tracing::warn!(service = %event.service, operation = %event.operation, %reason, "call failed");
        Err(CallError {
            service: self.p.service.to_string(),
            operation: self.spec.operation.to_string(),
            reason,
            kind: ErrorKind::from_wit(event.kind),
            last_error,
            history: self.history,
        })
    }
}
