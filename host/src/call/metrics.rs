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

use std::sync::Arc;
use std::time::Duration;

use ::metrics::SharedString;

use crate::failure::ErrorKind;
use crate::pipeline::meters::OUTCOMES;
use crate::pipeline::{Pipeline, StrategySlot};
use crate::plugin::bindings::wit;

/// Calls by how they ended (`outcome`: see [`Outcome`]).
pub(crate) const CALLS_TOTAL: &str = "mender_calls_total";
/// Attempts by how they went (`kind`: an error kind, or `ok`).
pub(crate) const ATTEMPTS_TOTAL: &str = "mender_attempts_total";
/// Whole calls, first admission to outcome, in seconds.
pub(crate) const CALL_DURATION_SECONDS: &str = "mender_call_duration_seconds";
/// Plugin answers by plugin and decision.
pub(crate) const DECISIONS_TOTAL: &str = "mender_decisions_total";
/// Attempts that ran (admission let them start), start to end, in seconds.
pub(crate) const ATTEMPT_DURATION_SECONDS: &str = "mender_attempt_duration_seconds";
/// Calls that ended without an answer, by their last failure's kind.
pub(crate) const FAILURES_TOTAL: &str = "mender_failures_total";
/// One plugin hook call (a Wasm call), in seconds, by plugin and hook.
pub(crate) const HOOK_DURATION_SECONDS: &str = "mender_hook_duration_seconds";
/// `allow` answers that came with a lease.
pub(crate) const LEASES_GRANTED_TOTAL: &str = "mender_leases_granted_total";
/// Attempts a lease admitted without a Wasm call.
pub(crate) const LEASE_ADMISSIONS_TOTAL: &str = "mender_lease_admissions_total";
/// Retries judged by the service's retry budget (`result`: spent, refused).
pub(crate) const RETRY_BUDGET_TOTAL: &str = "mender_retry_budget_total";
/// Hedged attempts by how they ended (`outcome`: see [`HedgeOutcome`]).
pub(crate) const HEDGES_TOTAL: &str = "mender_hedges_total";

/// Describes this module's families to the installed recorder (`# HELP`).
pub(crate) fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        CALLS_TOTAL,
        "Calls through Runtime::call by how they ended (outcome: ok, retried_ok, fallback, failed, rejected)"
    );
    describe_counter!(
        ATTEMPTS_TOTAL,
        "Attempts: kind=ok for an answer, else the handled failure's error kind (rejected: refused admission)"
    );
    describe_histogram!(
        CALL_DURATION_SECONDS,
        Unit::Seconds,
        "Whole calls, start to outcome, retries and waits included"
    );
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        Unit::Seconds,
        "Attempts that reached the caller's closure, start to answer or failure"
    );
    describe_counter!(
        DECISIONS_TOTAL,
        "Plugin answers to hooks by plugin and decision (pass, retry, retry-on, fail, fallback, refresh, allow, wait, reject, fault)"
    );
    describe_counter!(
        FAILURES_TOTAL,
        "Calls that ended without an answer (failed or rejected), by the last failure's error kind"
    );
    describe_histogram!(
        HOOK_DURATION_SECONDS,
        Unit::Seconds,
        "Plugin hook calls (admit, on-error, serve) by plugin, quarantine skips and faults included"
    );
    describe_counter!(
        LEASES_GRANTED_TOTAL,
        "allow answers that granted a lease (later attempts admitted without a Wasm call)"
    );
    describe_counter!(
        LEASE_ADMISSIONS_TOTAL,
        "Attempts admitted by a plugin's lease, without a Wasm call"
    );
    describe_counter!(
        RETRY_BUDGET_TOTAL,
        "Retries the service's retry budget let through (result=spent) or refused (result=refused)"
    );
    describe_counter!(
        HEDGES_TOTAL,
        "Hedges (extra attempts started because an attempt was slow) by how they ended (outcome: won, failed, cancelled)"
    );
}

/// How a hedge (an extra attempt a grant's hedge started) ended.
#[derive(Clone, Copy, Debug)]
pub(super) enum HedgeOutcome {
    /// It answered first: the call returned its answer.
    Won,
    /// It failed.
    Failed,
    /// Another attempt answered first, and it was dropped unfinished.
    Cancelled,
}

/// Counts a hedge that ended.
pub(super) fn hedge(service: &Arc<str>, outcome: HedgeOutcome) {
    let outcome = match outcome {
        HedgeOutcome::Won => "won",
        HedgeOutcome::Failed => "failed",
        HedgeOutcome::Cancelled => "cancelled",
    };
    ::metrics::counter!(HEDGES_TOTAL, "service" => label(service), "outcome" => outcome)
        .increment(1);
}

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
    /// Its index among the pipeline's cached `mender_calls_total` handles.
    fn index(self) -> usize {
        self as usize
    }

    /// Whether the call's last attempt was answered by the upstream.
    pub(super) fn answered_upstream(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::RetriedOk)
    }

    /// Whether the call ended without an answer.
    pub(super) fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Rejected)
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RetriedOk => "retried_ok",
            Outcome::Fallback => "fallback",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
        }
    }
}

// One cached handle per outcome (`pipeline/meters.rs`).
const _: () = assert!(Outcome::Rejected as usize + 1 == OUTCOMES);

/// A call ended: count it and its duration, through the pipeline's
/// cached handles.
pub(super) fn call_ended(p: &Pipeline, outcome: Outcome, took: Duration) {
    let m = &p.meters;
    m.calls[outcome.index()]
        .get_or_init(|| {
            ::metrics::counter!(CALLS_TOTAL, "service" => label(&p.service), "outcome" => outcome.as_str())
        })
        .increment(1);
    m.call_duration
        .get_or_init(
            || ::metrics::histogram!(CALL_DURATION_SECONDS, "service" => label(&p.service)),
        )
        .record(took.as_secs_f64());
}

/// An attempt was answered after `took`: counted (`kind="ok"`) and timed
/// through the pipeline's cached handles.
pub(super) fn answered_attempt(p: &Pipeline, took: Duration) {
    let m = &p.meters;
    m.answered_attempts
        .get_or_init(
            || ::metrics::counter!(ATTEMPTS_TOTAL, "service" => label(&p.service), "kind" => "ok"),
        )
        .increment(1);
    m.attempt_duration
        .get_or_init(
            || ::metrics::histogram!(ATTEMPT_DURATION_SECONDS, "service" => label(&p.service)),
        )
        .record(took.as_secs_f64());
}

/// A handled attempt failed with `kind` (`rejected` for an attempt that
/// admission refused).
pub(super) fn attempt_failed(p: &Pipeline, kind: ErrorKind) {
    p.meters.failed_attempts[kind.index()]
        .get_or_init(|| {
            ::metrics::counter!(ATTEMPTS_TOTAL, "service" => label(&p.service), "kind" => kind.as_str())
        })
        .increment(1);
}

/// A fallback handler answered `serve` with `decided` (`Fallback`,
/// `Pass` or `Fault`).
pub(super) fn decision(service: &Arc<str>, plugin: &Arc<str>, decided: Decided) {
    ::metrics::counter!(
        DECISIONS_TOTAL,
        "service" => label(service),
        "plugin" => label(plugin),
        "decision" => decided.as_str()
    )
    .increment(1);
}

/// The word a plugin's answer is counted under (the `decision` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decided {
    Allow,
    Reject,
    Wait,
    Pass,
    Retry,
    /// A retry sent to another upstream (0.2's `retry-on`).
    RetryOn,
    Fallback,
    Fail,
    Refresh,
    /// The hook trapped, overran its deadline or answered nonsense.
    Fault,
}

impl Decided {
    #[cfg(test)]
    const ALL: [Decided; crate::pipeline::meters::DECISION_WORDS] = [
        Decided::Allow,
        Decided::Reject,
        Decided::Wait,
        Decided::Pass,
        Decided::Retry,
        Decided::RetryOn,
        Decided::Fallback,
        Decided::Fail,
        Decided::Refresh,
        Decided::Fault,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Decided::Allow => "allow",
            Decided::Reject => "reject",
            Decided::Wait => "wait",
            Decided::Pass => "pass",
            Decided::Retry => "retry",
            Decided::RetryOn => "retry-on",
            Decided::Fallback => "fallback",
            Decided::Fail => "fail",
            Decided::Refresh => "refresh",
            Decided::Fault => "fault",
        }
    }
}

/// A strategy's timed hooks.
#[derive(Clone, Copy)]
pub(super) enum StrategyHook {
    Admit = 0,
    OnError = 1,
}

/// `slot`'s plugin answered a hook of `p`'s service with `decided`.
pub(super) fn strategy_decided(p: &Pipeline, slot: &StrategySlot, decided: Decided) {
    slot.meters.decisions[decided as usize]
        .get_or_init(|| {
            ::metrics::counter!(
                DECISIONS_TOTAL,
                "service" => label(&p.service),
                "plugin" => label(slot.plugin.name()),
                "decision" => decided.as_str()
            )
        })
        .increment(1);
}

/// `slot`'s plugin took `took` in `hook` for `p`'s service.
pub(super) fn strategy_hook_took(
    p: &Pipeline,
    slot: &StrategySlot,
    hook: StrategyHook,
    took: Duration,
) {
    let name = match hook {
        StrategyHook::Admit => "admit",
        StrategyHook::OnError => "on-error",
    };
    slot.meters.hooks[hook as usize]
        .get_or_init(|| {
            ::metrics::histogram!(
                HOOK_DURATION_SECONDS,
                "service" => label(&p.service),
                "plugin" => label(slot.plugin.name()),
                "hook" => name
            )
        })
        .record(took.as_secs_f64());
}

/// An attempt that ran took `took`.
pub(super) fn attempt_took(p: &Pipeline, took: Duration) {
    p.meters
        .attempt_duration
        .get_or_init(
            || ::metrics::histogram!(ATTEMPT_DURATION_SECONDS, "service" => label(&p.service)),
        )
        .record(took.as_secs_f64());
}

/// A call ended without an answer; `kind` is its last failure's.
pub(super) fn failed(p: &Pipeline, kind: ErrorKind) {
    p.meters.failures[kind.index()]
        .get_or_init(|| {
            ::metrics::counter!(FAILURES_TOTAL, "service" => label(&p.service), "kind" => kind.as_str())
        })
        .increment(1);
}

/// A plugin's `hook` (`admit`, `on-error`, `serve`) took `took`.
pub(super) fn hook_took(service: &Arc<str>, plugin: &Arc<str>, hook: &'static str, took: Duration) {
    ::metrics::histogram!(
        HOOK_DURATION_SECONDS,
        "service" => label(service),
        "plugin" => label(plugin),
        "hook" => hook
    )
    .record(took.as_secs_f64());
}

/// `slot`'s plugin granted a lease (cached: a breaker whose lease ends
/// at every failure grants one per failed call).
pub(super) fn lease_granted(p: &Pipeline, slot: &StrategySlot) {
    slot.meters
        .leases_granted
        .get_or_init(|| {
            ::metrics::counter!(
                LEASES_GRANTED_TOTAL,
                "service" => label(&p.service),
                "plugin" => label(slot.plugin.name())
            )
        })
        .increment(1);
}

/// `slot`'s lease admitted an attempt of `p`'s service (a cached handle: a
/// leased breaker does this on every successful call).
pub(super) fn lease_used(p: &Pipeline, slot: &StrategySlot) {
    slot.meters
        .lease_admissions
        .get_or_init(|| {
            ::metrics::counter!(
                LEASE_ADMISSIONS_TOTAL,
                "service" => label(&p.service),
                "plugin" => label(slot.plugin.name())
            )
        })
        .increment(1);
}

/// The retry budget judged a retry: spent (`true`) or refused.
pub(super) fn retry_budget(service: &Arc<str>, spent: bool) {
    let result = if spent { "spent" } else { "refused" };
    ::metrics::counter!(RETRY_BUDGET_TOTAL, "service" => label(service), "result" => result)
        .increment(1);
}

/// The word an `on-error` decision is counted under; `routed` when it
/// came with a route.
pub(super) fn decision_name(d: &wit::Decision, routed: bool) -> Decided {
    match d {
        wit::Decision::Pass => Decided::Pass,
        wit::Decision::Retry(_) if routed => Decided::RetryOn,
        wit::Decision::Retry(_) => Decided::Retry,
        wit::Decision::Fallback(_) => Decided::Fallback,
        wit::Decision::Fail(_) => Decided::Fail,
        wit::Decision::RefreshCredentials => Decided::Refresh,
    }
}

/// A label value the recorder keeps: the service's or plugin's shared
/// name, so a label costs a reference count, not an allocation (the
/// facade builds its key even when no recorder is installed).
fn label(value: &Arc<str>) -> SharedString {
    SharedString::from(Arc::clone(value))
}

#[cfg(test)]
mod tests {
    use super::Decided;

    /// Each word has its own cached handle: the slot array is indexed by
    /// the variant, and no two variants share a label.
    #[test]
    fn every_decision_word_has_its_own_slot_and_label() {
        for (i, d) in Decided::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i, "{d:?}");
        }
        let mut words: Vec<_> = Decided::ALL.iter().map(|d| d.as_str()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), Decided::ALL.len());
    }
}
