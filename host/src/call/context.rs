//! What a call needs from the runtime ([`CallContext`]: narrow, so the
//! call path never sees the `Runtime`), and what it keeps while it runs
//! ([`CallState`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::activity::{Activity, RecentDecision};
use super::metrics::Outcome;
use super::min_opt;
use crate::api::{AttemptRecord, CallSpec, CredentialProvider, Payload, Reply, ServedBy, Step};
use crate::failure::ErrorKind;
use crate::host::HostShared;
use crate::host::clock::duration_ms;
use crate::host::results::ResultStore;
use crate::pipeline::Pipeline;
use crate::pipeline::retry_budget::RetryBudgets;
use crate::pipeline::window::Ended;
use crate::plugin::bindings::wit;
use crate::redact::Redactor;

/// The runtime's parts one call uses.
pub(crate) struct CallContext<'a> {
    /// The service's pipeline, as live when the call started.
    pub(crate) pipeline: Arc<Pipeline>,
    /// The clock and the state store (retry budgets).
    pub(crate) host: &'a HostShared,
    pub(crate) redactor: &'a Redactor,
    /// Answers recorded for cached fallbacks.
    pub(crate) results: &'a ResultStore,
    pub(crate) credentials: &'a HashMap<String, Arc<dyn CredentialProvider>>,
    pub(crate) budgets: &'a RetryBudgets,
    /// Recent calls and decisions, for a live view.
    pub(crate) activity: &'a Activity,
}

/// A call in progress.
pub(crate) struct CallState<'a> {
    pub(super) cx: CallContext<'a>,
    pub(super) spec: &'a CallSpec,
    pub(super) started: Instant,
    /// The call's number in this runtime (in recent decisions).
    pub(super) id: u64,
    /// `None`: no deadline (none configured, or one too far to represent).
    pub(super) deadline: Option<Instant>,
    pub(super) history: Vec<AttemptRecord>,
    pub(super) refreshes: u32,
    /// The call's span (`spans.rs`); disabled without a subscriber.
    pub(super) span: tracing::Span,
    /// The operation, redacted once, when first needed (an event, a
    /// decision, an enabled span): see [`CallState::operation`].
    pub(super) redacted_operation: OnceLock<String>,
}

impl<'a> CallState<'a> {
    /// Starts a call: its clock, its deadline, and its count against the
    /// service's retry budget.
    pub(super) fn start(cx: CallContext<'a>, spec: &'a CallSpec) -> Self {
        let started = Instant::now();
        // A deadline past what the clock can represent is no deadline.
        let deadline = spec
            .deadline
            .or(cx.pipeline.guardrails.deadline)
            .and_then(|d| started.checked_add(d));
        if let Some(b) = &cx.pipeline.guardrails.retry_budget {
            cx.budgets.count_call(cx.host, &cx.pipeline.service, b);
        }
        let mut call = CallState {
            id: cx.activity.next_call(),
            span: super::spans::call(&cx.pipeline.service),
            cx,
            spec,
            started,
            deadline,
            history: Vec::new(),
            refreshes: 0,
            redacted_operation: OnceLock::new(),
        };
        call.trace_start();
        call
    }

    pub(super) fn deadline_left(&self) -> Option<Duration> {
        self.deadline_left_at(Instant::now())
    }

    /// What is left of the deadline at `now`, a recent clock reading.
    pub(super) fn deadline_left_at(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.cx.host.now_ms()
    }

    /// The timeout of an attempt starting at `began`: the tightest of the
    /// admission grant's, the service's, the call's, and what is left of
    /// the deadline.
    pub(super) fn attempt_timeout(
        &self,
        granted: Option<Duration>,
        began: Instant,
    ) -> Option<Duration> {
        let g = &self.cx.pipeline.guardrails;
        let t = min_opt(
            min_opt(granted, g.attempt_timeout),
            self.spec.attempt_timeout,
        );
        min_opt(t, self.deadline_left_at(began))
    }

    /// The upstream answered at `ended` after `took`: count it, record it
    /// for cached fallbacks, and hand it back with the history of what
    /// came before.
    pub(super) fn succeed<T: Payload>(
        self,
        value: T,
        ended: Instant,
        took: Duration,
        span: &tracing::Span,
    ) -> Reply<T> {
        let p = &self.cx.pipeline;
        p.stats.record_success(duration_ms(took));
        super::metrics::answered_attempt(p, took);
        super::spans::answered(span);
        // Attempts a hedge race cancelled were not failures: a call whose
        // history holds only those was answered at its first try.
        let outcome = if self
            .history
            .iter()
            .all(|r| matches!(r.step, Step::Cancelled { .. }))
        {
            Outcome::Ok
        } else {
            Outcome::RetriedOk
        };
        self.ended_at(outcome, ended);
        // Only an idempotent call's answer can stand in for a later one:
        // replaying a write's result would claim a write that never
        // happened.
        if p.records_results
            && self.spec.idempotent
            && let Some(body) = value.encode()
        {
            let now = self.now_ms();
            self.cx
                .results
                .record(&p.service, self.result_key(), body, now);
        }
        Reply {
            value,
            served_by: ServedBy::Upstream,
            history: self.history,
        }
    }

    /// The call ended now: count it for the metrics and the recent window.
    pub(super) fn ended(&self, outcome: Outcome) {
        self.ended_at(outcome, Instant::now());
    }

    /// The call ended at `at`, a clock reading the caller already has.
    fn ended_at(&self, outcome: Outcome, at: Instant) {
        let p = &self.cx.pipeline;
        let took = at.saturating_duration_since(self.started);
        super::metrics::call_ended(p, outcome, took);
        self.trace_end(outcome);
        let ended = match outcome {
            Outcome::Ok | Outcome::RetriedOk => Ended::Answered,
            Outcome::Fallback => Ended::Fallback,
            Outcome::Failed | Outcome::Rejected => Ended::Failed,
        };
        self.cx
            .activity
            .call_ended(&p.service, &p.window, ended, took);
    }

    /// Remembers what was decided after attempt `number` failed with
    /// `kind`, for a live view. `step`'s reason is redacted here when it
    /// quotes a plugin or a decoder, whose words may echo what they saw;
    /// the host's own reasons are names, kinds and numbers.
    pub(super) fn remember(&self, number: u32, kind: ErrorKind, step: &Step) {
        let redacted;
        let step = match step {
            Step::Fail { reason, cause } if cause.quotes_others() => {
                redacted = Step::Fail {
                    reason: self.cx.redactor.redact(reason),
                    cause: cause.clone(),
                };
                &redacted
            }
            other => other,
        };
        let p = &self.cx.pipeline;
        let decision = RecentDecision::new(
            self.id,
            &p.service,
            self.operation().to_owned(),
            number,
            kind,
            step,
        );
        self.cx.activity.decided(&p.service, &p.window, decision);
    }

    pub(super) fn result_key(&self) -> &str {
        self.spec
            .result_key
            .as_deref()
            .unwrap_or(&self.spec.operation)
    }

    /// The call's tags and `extra` as plugins and logs see them: redacted.
    pub(super) fn tags(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let redactor = self.cx.redactor;
        self.spec
            .tags
            .iter()
            .chain(extra)
            .map(|(k, v)| redactor.redact_pair(k, v))
            .collect()
    }

    /// The operation as plugins and logs see it: redacted (a URL's
    /// `?api_key=…`), once per call.
    pub(super) fn operation(&self) -> &str {
        self.redacted_operation
            .get_or_init(|| self.cx.redactor.redact(&self.spec.operation))
    }

    /// Records a handled attempt in the history, its span (`span`) and
    /// the log.
    pub(super) fn push(
        &mut self,
        span: &tracing::Span,
        event: &wit::ErrorEvent,
        number: u32,
        began: Instant,
        took: Duration,
        step: Step,
    ) {
        let kind = ErrorKind::from(event.kind);
        super::metrics::attempt_failed(&self.cx.pipeline.service, kind);
        if kind != ErrorKind::Rejected {
            super::metrics::attempt_took(&self.cx.pipeline.service, took);
        }
        super::spans::handled(span, event, &step);
        let _in_attempt = span.enter();
        tracing::info!(
            service = %event.service, operation = %event.operation, attempt = number,
            kind = %kind, step = ?step, "attempt handled"
        );
        self.remember(number, kind, &step);
        // `tags()` puts the call's own tags first, one for one.
        let own_tags = event.tags.get(self.spec.tags.len()..).unwrap_or_default();
        self.history.push(AttemptRecord {
            attempt: number,
            started: began.saturating_duration_since(self.started),
            took,
            kind,
            message: event.message.clone(),
            status: event.status,
            tags: own_tags.to_vec(),
            step,
        });
    }
}
