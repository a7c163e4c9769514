//! The metric handles a service's successful calls record into, kept with
//! its pipeline so that the happy path does not rebuild a metric key per
//! emission.
//!
//! Each `metrics::counter!(name, labels)` builds a key (a `Vec` of
//! labels, hashed) and asks the recorder for the handle; with the
//! Prometheus recorder that is a lookup in its registry as well. Four
//! emissions per successful call cost more than the rest of the call
//! (`bench/run`'s metrics rows). A handle is registered once, on first
//! use, with the recorder in force then (the facade's global one, or a
//! test's local one), and reused for the pipeline's life; a reload builds
//! new pipelines, which register again (the recorder hands back the same
//! series). So an embedder installs its recorder before the first call.
//!
//! What every call records is cached here: the successful call's series
//! and a failed one's (its attempts and failures by kind: without a
//! recorder, building their keys was an eighth of a failed call with no
//! plugin), and each strategy's decisions and hook durations. A fallback
//! handler's (asked only when a call gives up) still emit through the
//! facade directly.
//! What is recorded, and under which names, is `call/metrics.rs`'s
//! business: this module only holds the cells.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

/// How many ways a call can end (`call/metrics.rs`'s `Outcome`).
pub(crate) const OUTCOMES: usize = 5;

/// One service's cached handles, each registered on first use.
#[derive(Default)]
pub(crate) struct ServiceMeters {
    /// `mender_calls_total`, one per outcome.
    pub(crate) calls: [OnceLock<Counter>; OUTCOMES],
    /// `mender_attempts_total{kind="ok"}`.
    pub(crate) answered_attempts: OnceLock<Counter>,
    /// `mender_call_duration_seconds`.
    pub(crate) call_duration: OnceLock<Histogram>,
    /// `mender_attempt_duration_seconds`.
    pub(crate) attempt_duration: OnceLock<Histogram>,
    /// `mender_attempts_total` of failed attempts, by `ErrorKind::index`.
    pub(crate) failed_attempts: [OnceLock<Counter>; KINDS],
    /// `mender_failures_total`, by `ErrorKind::index`.
    pub(crate) failures: [OnceLock<Counter>; KINDS],
}

/// How many error kinds there are (`ErrorKind::ALL`).
const KINDS: usize = crate::failure::ErrorKind::ALL.len();

/// How many decision words a strategy's answer is counted under
/// (`call/metrics.rs`'s `Decided`).
pub(crate) const DECISION_WORDS: usize = 10;

/// A strategy's hooks that are timed (`admit`, `on-error`).
pub(crate) const STRATEGY_HOOKS: usize = 2;

/// One strategy slot's cached handles: every decision it makes is counted
/// and timed, so a pipeline of three plugins built six metric keys per
/// failed call without them.
#[derive(Default)]
pub(crate) struct SlotMeters {
    /// `mender_lease_admissions_total` for this plugin in this service.
    pub(crate) lease_admissions: OnceLock<Counter>,
    /// `mender_leases_granted_total` for this plugin in this service.
    pub(crate) leases_granted: OnceLock<Counter>,
    /// `mender_decisions_total`, by decision word.
    pub(crate) decisions: [OnceLock<Counter>; DECISION_WORDS],
    /// `mender_hook_duration_seconds`, by hook.
    pub(crate) hooks: [OnceLock<Histogram>; STRATEGY_HOOKS],
}
