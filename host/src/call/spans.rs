//! The call's `tracing` spans: `mender.call` for the whole call and one
//! `mender.attempt` under it per attempt, so a trace (OTLP through the
//! `mender` command, or whatever subscriber an embedder installs) shows
//! which plugin decided what after each attempt, and how long it waited.
//!
//! The core only opens spans; it exports nothing and depends on no
//! OpenTelemetry crate. The caller's attempt closure runs inside its
//! attempt span, so what it does (the gateway's upstream request, its
//! `traceparent`) is that span's child. Every value recorded is redacted
//! or from a bounded set: the operation and the error message pass the
//! redactor, kinds and decisions are fixed words, plugins come from the
//! config. Without a subscriber (or with one that ignores `info` spans of
//! `mender::call`) a span is disabled and recording into it costs nothing
//! but a check; the redacted operation is only computed for an enabled
//! span.

use tracing::Span;
use tracing::field::Empty;

use super::context::CallState;
use super::metrics::Outcome;
use crate::api::Step;
use crate::failure::ErrorKind;
use crate::host::clock::duration_ms;
use crate::plugin::bindings::wit;

/// The span of a whole call (`operation` is recorded once the call's
/// state exists, redacted).
pub(super) fn call(service: &str) -> Span {
    tracing::info_span!(
        target: "mender::call",
        "mender.call",
        service = service,
        operation = Empty,
        outcome = Empty,
        attempts = Empty,
        otel.status_code = Empty,
    )
}

impl CallState<'_> {
    /// Records what is known once the call has started.
    pub(super) fn trace_start(&mut self) {
        if self.span.is_disabled() {
            return;
        }
        self.span.record("operation", self.operation());
    }

    /// The span of attempt `number`, a child of the call's.
    pub(super) fn attempt_span(&self, number: u32) -> Span {
        let span = tracing::info_span!(
            target: "mender::call",
            parent: &self.span,
            "mender.attempt",
            service = &*self.cx.pipeline.service,
            operation = Empty,
            attempt = number,
            kind = Empty,
            decision = Empty,
            plugin = Empty,
            delay_ms = Empty,
            error = Empty,
            otel.status_code = Empty,
        );
        if !self.span.is_disabled() {
            span.record("operation", self.operation());
        }
        span
    }

    /// The call ended: how, after how many attempts.
    pub(super) fn trace_end(&self, outcome: Outcome) {
        let attempts = self.history.len() + usize::from(outcome.answered_upstream());
        self.span.record("outcome", outcome.as_str());
        self.span.record("attempts", attempts);
        if outcome.is_failure() {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

/// Records an attempt the upstream answered.
pub(super) fn answered(span: &Span) {
    span.record("kind", "ok");
}

/// Records a handled attempt: its failure (`event`, already redacted) and
/// what was decided (`step`).
pub(super) fn handled(span: &Span, event: &wit::ErrorEvent, step: &Step) {
    if span.is_disabled() {
        return;
    }
    span.record("kind", ErrorKind::from(event.kind).as_str());
    span.record("error", event.message.as_str());
    span.record("otel.status_code", "ERROR");
    let (decision, plugin) = match step {
        Step::Retry { by, delay } => {
            span.record("delay_ms", duration_ms(*delay));
            ("retry", Some(by.as_str()))
        }
        Step::RefreshCredentials { by } => ("refresh", Some(by.as_str())),
        Step::Fallback { by } => ("fallback", Some(by.as_str())),
        Step::Fail { cause, .. } => ("fail", cause.plugin()),
        Step::Hedged => ("hedged", None),
        Step::Cancelled { .. } => ("cancelled", None),
    };
    span.record("decision", decision);
    if let Some(plugin) = plugin {
        span.record("plugin", plugin);
    }
}

/// Records an attempt dropped because attempt `answered` answered first.
pub(super) fn cancelled(span: &Span, answered: u32) {
    if span.is_disabled() {
        return;
    }
    span.record("kind", ErrorKind::Cancelled.as_str());
    span.record("decision", "cancelled");
    span.record(
        "error",
        format!("attempt {answered} answered first").as_str(),
    );
}
