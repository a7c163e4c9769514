//! After a failed attempt: the event the strategies see, what they
//! decide, and what the guardrails let through.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::context::CallState;
use super::metrics::{self, Decided, StrategyHook};
use crate::api::{GiveUp, Step};
use crate::config::OnFault;
use crate::failure::{ErrorKind, Failure};
use crate::host::clock::duration_ms;
use crate::plugin::bindings::{Routed, wit};

/// What the strategies decided about a failed attempt.
pub(super) enum Verdict {
    Retry {
        by: Arc<str>,
        delay: Duration,
        /// Routing: the upstream a `retry-on` sends the retry to.
        upstream: Option<u32>,
    },
    Refresh {
        by: Arc<str>,
    },
    Fallback {
        by: Arc<str>,
        answer: wit::FallbackAnswer,
    },
    Fail(GiveUp),
}

/// What the call does next, once the guardrails have had their say.
pub(super) enum Next {
    /// Another attempt, after `wait`; `step` says why.
    Again { step: Step, wait: Duration },
    /// Answer with a strategy's fallback.
    Fallback {
        by: Arc<str>,
        answer: wit::FallbackAnswer,
    },
    /// No more attempts.
    GiveUp(GiveUp),
}

impl CallState<'_> {
    /// Counts a failed attempt, which ended at `ended`, builds its
    /// (redacted) event, and asks the strategies what to do.
    pub(super) async fn on_failure(
        &self,
        number: u32,
        upstream: Option<u32>,
        failure: Failure,
        ended: Instant,
    ) -> (wit::ErrorEvent, Verdict) {
        let event = self.failure_event(number, failure, ended);
        let verdict = self.decide(&event, upstream).await;
        // The permits belonged to this attempt; the next gets its own.
        self.permits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        (event, verdict)
    }

    /// Counts failed attempt `number` (the service's outcomes, leases
    /// that end on failure) and builds its redacted event, as of `ended`
    /// (the reading the loop took when the attempt ended).
    pub(super) fn failure_event(
        &self,
        number: u32,
        failure: Failure,
        ended: Instant,
    ) -> wit::ErrorEvent {
        let p = &self.cx.pipeline;
        self.in_flight.release();
        if failure.kind.reached_upstream() {
            p.stats.record_failure(failure.kind);
            for slot in &p.strategies {
                slot.lease.on_failure();
            }
        }
        let event = wit::ErrorEvent {
            service: p.service.to_string(),
            operation: self.operation().to_owned(),
            kind: failure.kind.into(),
            message: self.cx.redactor.redact(&failure.message),
            status: failure.status,
            retry_after: failure.retry_after.map(duration_ms),
            attempt: number,
            elapsed: duration_ms(ended.saturating_duration_since(self.started)),
            deadline_left: self.deadline_left_at(ended).map(duration_ms),
            idempotent: self.spec.idempotent,
            tags: self.tags(&failure.tags),
        };
        tracing::debug!(
            service = %event.service, operation = %event.operation, attempt = number,
            kind = %failure.kind, status = ?event.status, error = %event.message,
            "attempt failed"
        );
        event
    }

    /// The permit the `index`th strategy gave the attempt that failed.
    fn permit_of(&self, index: usize) -> Option<u64> {
        let permits = self.permits.lock().unwrap_or_else(|p| p.into_inner());
        permits.iter().find(|(i, _)| *i == index).map(|(_, p)| *p)
    }

    /// Strategies in order until one answers other than `pass`; `upstream`
    /// is the one the failed attempt used.
    async fn decide(&self, event: &wit::ErrorEvent, upstream: Option<u32>) -> Verdict {
        let p = &self.cx.pipeline;
        for (index, slot) in p.strategies.iter().enumerate().filter(|(_, s)| s.decides()) {
            // One reading for the counts, the deadline and the hook.
            let start = self.hook_start();
            let recent = slot.cursor.take(&p.stats, &slot.lease);
            let mut detail = slot.take_detail(
                &p.stats,
                self.cx.host.ms_at(start.at),
                self.cx.host.origin_ms,
                self.in_flight.others(),
            );
            detail.upstreams = self.upstreams(upstream);
            detail.permit = self.permit_of(index);
            let by = slot.plugin.name().clone();
            let answered = slot
                .plugin
                .clone()
                .on_error(start, &p.service, event, &recent, &detail)
                .await;
            metrics::strategy_hook_took(p, slot, StrategyHook::OnError, start.at.elapsed());
            let answered = answered.and_then(|r| self.check_route(&by, "the retry", r));
            let Routed {
                answer: decision,
                upstream: route,
            } = match answered {
                Ok(d) => d,
                Err(fault) => {
                    metrics::strategy_decided(p, slot, Decided::Fault);
                    match slot.plugin.on_fault() {
                        OnFault::FailOpen => continue,
                        OnFault::FailClosed => return Verdict::Fail(GiveUp::PluginFault(fault)),
                    }
                }
            };
            let decided = metrics::decision_name(&decision, route.is_some());
            metrics::strategy_decided(p, slot, decided);
            tracing::debug!(service = %event.service, attempt = event.attempt, plugin = %by, decision = ?decision, "decision");
            return match decision {
                wit::Decision::Pass => continue,
                wit::Decision::Retry(ms) => Verdict::Retry {
                    by,
                    delay: Duration::from_millis(ms),
                    upstream: route,
                },
                wit::Decision::Fallback(answer) => Verdict::Fallback { by, answer },
                wit::Decision::Fail(reason) => Verdict::Fail(GiveUp::Strategy {
                    plugin: by.to_string(),
                    reason,
                }),
                wit::Decision::RefreshCredentials => Verdict::Refresh { by },
            };
        }
        let kind = ErrorKind::from(event.kind);
        Verdict::Fail(if p.strategies.iter().any(|s| s.decides()) {
            GiveUp::NoRetry { kind }
        } else {
            GiveUp::NoStrategy { kind }
        })
    }

    /// Holds the verdict against the guardrails and the retry budget, and
    /// refreshes credentials when that is what was decided.
    pub(super) async fn guard(&mut self, number: u32, verdict: Verdict) -> Next {
        match verdict {
            Verdict::Retry {
                by,
                delay,
                upstream,
            } => match self.check_retry(number, delay) {
                Ok(delay) => {
                    if let Some(i) = upstream {
                        self.route = i;
                    }
                    Next::Again {
                        step: Step::Retry {
                            by: by.to_string(),
                            delay,
                        },
                        wait: delay,
                    }
                }
                Err(refusal) => Next::GiveUp(GiveUp::RetryRefused {
                    plugin: by.to_string(),
                    refusal,
                }),
            },
            Verdict::Refresh { by } => match self.refresh(number, &by).await {
                Ok(()) => Next::Again {
                    step: Step::RefreshCredentials { by: by.to_string() },
                    wait: Duration::ZERO,
                },
                Err(cause) => Next::GiveUp(cause),
            },
            Verdict::Fallback { by, answer } => Next::Fallback { by, answer },
            Verdict::Fail(cause) => Next::GiveUp(cause),
        }
    }

    /// The guardrails' verdict on a retry, then the budget's: the delay to
    /// wait, or why not.
    fn check_retry(
        &self,
        number: u32,
        delay: Duration,
    ) -> Result<Duration, crate::config::RetryRefusal> {
        let p = &self.cx.pipeline;
        let delay =
            p.guardrails
                .check_retry(number, self.spec.idempotent, delay, self.deadline_left())?;
        if let Some(b) = &p.guardrails.retry_budget {
            let spent = self.cx.budgets.spend_retry(self.cx.host, &p.service, b);
            metrics::retry_budget(&p.service, spent.is_ok());
            spent?;
        }
        Ok(delay)
    }

    /// Refreshes credentials for a retry, within the guardrails.
    async fn refresh(&mut self, number: u32, by: &str) -> Result<(), GiveUp> {
        let p = self.cx.pipeline.clone();
        let g = &p.guardrails;
        if self.refreshes >= g.max_credential_refreshes {
            return Err(GiveUp::RefreshLimit {
                plugin: by.to_owned(),
                max: g.max_credential_refreshes,
            });
        }
        // An auth failure means the upstream refused before acting, so a
        // retry after a refresh is safe even for non-idempotent operations;
        // attempts and the deadline still bound it.
        g.check_retry(number, true, Duration::ZERO, self.deadline_left())
            .map_err(|refusal| GiveUp::RefreshRefused {
                plugin: by.to_owned(),
                refusal,
            })?;
        let Some(provider) = self.cx.credentials.get(&*p.service) else {
            return Err(GiveUp::NoCredentialProvider {
                plugin: by.to_owned(),
                service: p.service.to_string(),
            });
        };
        self.refreshes += 1;
        provider
            .refresh(&p.service)
            .await
            .map_err(|e| GiveUp::RefreshFailed {
                message: self.cx.redactor.redact(&e),
            })
    }
}
