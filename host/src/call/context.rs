//! What a call needs from the runtime ([`CallContext`]: narrow, so the
//! call path never sees the `Runtime`), and what it keeps while it runs
//! ([`CallState`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::activity::{Activity, Decided};
use super::metrics::Outcome;
use super::min_opt;
use crate::api::PluginFault;
use crate::api::{AttemptRecord, CallSpec, CredentialProvider, Payload, Reply, ServedBy, Step};
use crate::failure::ErrorKind;
use crate::host::HostShared;
use crate::host::clock::duration_ms;
use crate::host::results::ResultStore;
use crate::pipeline::Pipeline;
use crate::pipeline::in_flight::Ticket;
use crate::pipeline::retry_budget::RetryBudgets;
use crate::pipeline::window::Ended;
use crate::plugin::HookStart;
use crate::plugin::bindings::{Routed, Upstreams, wit};
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
    pub(super) redacted_operation: OnceLock<Arc<str>>,
    /// Routing: the call's upstreams as plugins and the history see them:
    /// redacted, once per call, when first needed (see
    /// [`CallState::upstream_names`]).
    pub(super) redacted_upstreams: OnceLock<Option<Arc<[String]>>>,
    /// Routing: the upstream the next attempt goes to unless its grant
    /// says otherwise: the last attempt's, or a `retry-on`'s choice.
    pub(super) route: u32,
    /// The call's place in the service's in-flight count (contract 0.2).
    pub(super) in_flight: Ticket,
    /// The permits the current attempt was granted, by strategy index
    /// (contract 0.2): handed back with its outcome. Empty unless a plugin
    /// named one, so it never allocates on the happy path.
    pub(super) permits: Mutex<Vec<(usize, u64)>>,
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
        let in_flight = Ticket::new(&cx.pipeline.stats);
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
            redacted_upstreams: OnceLock::new(),
            route: 0,
            in_flight,
            permits: Mutex::new(Vec::new()),
        };
        call.trace_start();
        call
    }

    /// Routing: the upstream an attempt uses: the one its admission
    /// `granted`, else [`route`](Self::route); `None` when the call names
    /// no upstreams. A leased grant's index past this call's list (a
    /// lease is per service, the list per call) is passed over.
    pub(super) fn upstream_for(&mut self, granted: Option<u32>) -> Option<u32> {
        let count = self.spec.upstreams.as_deref()?.len();
        let fits = |i: &u32| usize::try_from(*i).is_ok_and(|i| i < count);
        if let Some(i) = granted.filter(fits) {
            self.route = i;
        }
        Some(self.route)
    }

    /// Routing: the call's upstreams, and `used`, for a hook.
    pub(super) fn upstreams(&self, used: Option<u32>) -> Upstreams {
        Upstreams {
            names: self.upstream_names().cloned(),
            used,
        }
    }

    /// Routing: the call's upstreams, redacted (a URL may carry a key).
    /// The caller's list itself when nothing in it is secret, as usual.
    pub(super) fn upstream_names(&self) -> Option<&Arc<[String]>> {
        self.redacted_upstreams
            .get_or_init(|| {
                let names = self.spec.upstreams.as_ref()?;
                let redacted: Vec<String> = names
                    .iter()
                    .map(|n| self.cx.redactor.redact_name(n).to_string())
                    .collect();
                Some(if redacted[..] == names[..] {
                    names.clone()
                } else {
                    redacted.into()
                })
            })
            .as_ref()
    }

    /// Routing: holds a strategy's answer against the call's upstreams
    /// ([`Upstreams::hold`]); a bad index is `by`'s fault.
    pub(super) fn check_route<T>(
        &self,
        by: &str,
        what: &str,
        routed: Routed<T>,
    ) -> Result<Routed<T>, PluginFault> {
        self.upstreams(None)
            .hold(what, routed)
            .map_err(|reason| PluginFault {
                plugin: by.to_owned(),
                reason,
                cut_off: false,
            })
    }

    /// A hook call starting now, with what is left of the deadline: the
    /// one clock reading the hook and what surrounds it use.
    pub(super) fn hook_start(&self) -> HookStart {
        let at = Instant::now();
        HookStart {
            at,
            budget: self.deadline_left_at(at),
        }
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
        mut self,
        value: T,
        ended: Instant,
        took: Duration,
        span: &tracing::Span,
    ) -> Reply<T> {
        let p = &self.cx.pipeline;
        self.in_flight.release();
        let latency_ms = duration_ms(took);
        p.stats.record_success(latency_ms);
        let permits = std::mem::take(self.permits.get_mut().unwrap_or_else(|e| e.into_inner()));
        p.record_success_detail(latency_ms, &permits);
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
    /// `kind`, for a live view. `step`'s reason is redacted here
    /// when it quotes a plugin or a decoder, whose words may echo what
    /// they saw; the host's own reasons are names, kinds and numbers.
    pub(super) fn remember(&self, number: u32, kind: ErrorKind, step: Step) {
        let step = match step {
            Step::Fail { reason, cause } if cause.quotes_others() => Step::Fail {
                reason: self.cx.redactor.redact(&reason),
                cause,
            },
            other => other,
        };
        let p = &self.cx.pipeline;
        let decision = Decided {
            at: std::time::Instant::now(),
            call: self.id,
            service: p.service.clone(),
            operation: self.operation_shared().clone(),
            attempt: number,
            kind,
            step,
        };
        self.cx.activity.decided(&p.window, decision);
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
        self.operation_shared()
    }

    /// [`operation`](Self::operation), shared (the live view keeps it).
    fn operation_shared(&self) -> &Arc<str> {
        self.redacted_operation
            .get_or_init(|| self.cx.redactor.redact_name(&self.spec.operation))
    }

    /// Records a handled attempt in the history, its span (`span`) and
    /// the log.
    pub(super) fn push(
        &mut self,
        span: &tracing::Span,
        event: &wit::ErrorEvent,
        number: u32,
        upstream: Option<u32>,
        (began, took): (Instant, Duration),
        step: Step,
    ) {
        let kind = ErrorKind::from(event.kind);
        super::metrics::attempt_failed(&self.cx.pipeline, kind);
        if kind != ErrorKind::Rejected {
            super::metrics::attempt_took(&self.cx.pipeline, took);
        }
        super::spans::handled(span, event, &step);
        let _in_attempt = span.enter();
        tracing::info!(
            service = %event.service, operation = %event.operation, attempt = number,
            kind = %kind, step = ?step, "attempt handled"
        );
        self.remember(number, kind, step.clone());
        // `tags()` puts the call's own tags first, one for one.
        let own_tags = event.tags.get(self.spec.tags.len()..).unwrap_or_default();
        self.history.push(AttemptRecord {
            attempt: number,
            started: began.saturating_duration_since(self.started),
            took,
            kind,
            message: event.message.clone(),
            status: event.status,
            upstream: upstream.and_then(|i| {
                let names = self.upstream_names()?;
                names.get(usize::try_from(i).ok()?).cloned()
            }),
            tags: own_tags.to_vec(),
            step,
        });
    }
}
