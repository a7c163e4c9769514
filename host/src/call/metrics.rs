//! What the call path reports to the `metrics` facade: how each call
//! ended, each attempt, how long the call took, and each plugin decision.
//!
//! The core only emits; whoever embeds it installs a recorder (the
//! `mender` command installs a Prometheus one behind `--admin`). Without a
//! recorder each emission is a no-op, so the core depends on the facade
//! alone. Every label value comes from a bounded set: the service (one
//! pipeline per configured or capped dynamic service), a plugin name from
//! the config, an error kind, or a fixed word; never an operation, an id
//! or a message. `docs/observability.md` lists the families.

use std::time::Duration;

use crate::failure::ErrorKind;
use crate::plugin::bindings::wit;

/// Calls by how they ended (`outcome`: see [`Outcome`]).
pub(crate) const CALLS_TOTAL: &str = "mender_calls_total";
/// Attempts by how they went (`kind`: an error kind, or `ok`).
pub(crate) const ATTEMPTS_TOTAL: &str = "mender_attempts_total";
/// Whole calls, first admission to outcome, in seconds.
pub(crate) const CALL_DURATION_SECONDS: &str = "mender_call_duration_seconds";
/// Plugin answers by plugin and decision.
pub(crate) const DECISIONS_TOTAL: &str = "mender_decisions_total";

/// How a call ended.
#[derive(Clone, Copy, Debug)]
pub(super) enum Outcome {
    /// The upstream answered the first attempt.
    Ok,
    /// The upstream answered after one or more handled failures.
    RetriedOk,
    /// A strategy's or a fallback handler's answer was served.
    Fallback,
    /// The call failed after reaching (or trying to reach) the upstream.
    Failed,
    /// The call failed because its last attempt was refused admission
    /// (an open circuit, a rate limit): the upstream never saw it.
    Rejected,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RetriedOk => "retried_ok",
            Outcome::Fallback => "fallback",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
        }
    }
}

/// A call ended: count it and its duration.
pub(super) fn call_ended(service: &str, outcome: Outcome, took: Duration) {
    let service = label(service);
    ::metrics::counter!(CALLS_TOTAL, "service" => service.clone(), "outcome" => outcome.as_str())
        .increment(1);
    ::metrics::histogram!(CALL_DURATION_SECONDS, "service" => service).record(took.as_secs_f64());
}

/// An attempt ended: `None` for an answer, else the failure's kind
/// (`rejected` for an attempt that admission refused).
pub(super) fn attempt(service: &str, failed: Option<ErrorKind>) {
    let kind = failed.map_or("ok", ErrorKind::as_str);
    ::metrics::counter!(ATTEMPTS_TOTAL, "service" => label(service), "kind" => kind).increment(1);
}

/// A plugin answered a hook with `decision` (one of a fixed set of words,
/// see [`decision_name`] and the admission and fallback call sites).
pub(super) fn decision(service: &str, plugin: &str, decision: &'static str) {
    ::metrics::counter!(
        DECISIONS_TOTAL,
        "service" => label(service),
        "plugin" => label(plugin),
        "decision" => decision
    )
    .increment(1);
}

/// The word an `on-error` decision is counted under.
pub(super) fn decision_name(d: &wit::Decision) -> &'static str {
    match d {
        wit::Decision::Pass => "pass",
        wit::Decision::Retry(_) => "retry",
        wit::Decision::Fallback(_) => "fallback",
        wit::Decision::Fail(_) => "fail",
        wit::Decision::RefreshCredentials => "refresh",
    }
}

/// A label value the recorder keeps (the facade takes owned strings for
/// anything not `'static`).
fn label(value: &str) -> String {
    value.to_owned()
}
