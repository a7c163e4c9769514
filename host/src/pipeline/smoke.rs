//! The smoke check a new plugin version passes before a reload swaps it in:
//! a scratch instance answers each of its hooks once, within its limits.
//!
//! Loading already proves a component compiles, implements a world of this
//! contract and accepts its config in `init`. What it cannot prove is that
//! the hooks work: a version that traps on its first `on-error` would
//! otherwise be found out by live calls. The scratch instance has its own
//! in-memory state and metrics, so the check leaves no trace in what the
//! live plugins see.

use std::sync::Arc;

use wasmtime::Engine;

use crate::config::PluginSpec;
use crate::host::HostShared;
use crate::plugin::bindings::wit;
use crate::plugin::{self, LoadError, Loaded, Prepared};

/// The service the check calls hooks for.
const SERVICE: &str = "mender-smoke-check";

/// Calls each hook of a scratch instance of `prepared` once.
pub(crate) fn check(
    engine: &Engine,
    live: &HostShared,
    spec: &PluginSpec,
    prepared: &Prepared,
) -> Result<(), LoadError> {
    // A fixed seed: the check must not draw on the live seeded sequence.
    let scratch = Arc::new(live.scratch(0));
    let failed = |reason: String| LoadError {
        plugin: spec.name.clone(),
        location: spec.location.clone(),
        reason: format!("failed the smoke check: {reason}"),
    };
    let service: Arc<str> = Arc::from(SERVICE);
    let event = event();
    let recent = wit::Outcomes {
        successes: 1,
        failures: 1,
        failures_by_kind: vec![(event.kind, 1)],
        consecutive_failures: 1,
        success_latency_total: 10,
        leased_attempts: 0,
    };
    // The 0.2 detail of such a report: one success of 10 ms, one failure.
    let detail = crate::plugin::current::RecentDetail {
        latency: crate::plugin::current::LatencySummary {
            count: 1,
            sum: 10,
            sum_of_squares: 100,
            span: 1_000,
        },
        consecutive_by_kind: vec![(event.kind.into(), 1)],
        upstreams: Default::default(),
        in_flight: 1,
        slow_calls: 1,
        permit: Some(1),
        permitted_successes: vec![1],
    };
    match plugin::instantiate(engine, &scratch, spec, prepared)? {
        Loaded::Strategy(p) => {
            if p.hooks.contains(wit::Hooks::ADMIT) {
                let call = wit::CallInfo {
                    service: SERVICE.into(),
                    operation: event.operation.clone(),
                    attempt: 1,
                    elapsed: 0,
                    deadline_left: event.deadline_left,
                    idempotent: true,
                    tags: Vec::new(),
                };
                p.admit(&service, &call, &recent, &detail)
                    .map_err(|f| failed(f.reason))?;
            }
            if p.hooks.contains(wit::Hooks::ON_ERROR) {
                p.on_error(&service, &event, &recent, &detail)
                    .map_err(|f| failed(f.reason))?;
            }
        }
        Loaded::Fallback(p) => {
            p.serve(&service, &event, None)
                .map_err(|f| failed(f.reason))?;
        }
    }
    Ok(())
}

/// A plain failure: the upstream refused the connection on a first attempt.
fn event() -> wit::ErrorEvent {
    wit::ErrorEvent {
        service: SERVICE.into(),
        operation: "smoke-check".into(),
        kind: wit::ErrorKind::Connect,
        message: "smoke check by the host before a reload".into(),
        status: None,
        retry_after: None,
        attempt: 1,
        elapsed: 5,
        deadline_left: Some(10_000),
        idempotent: true,
        tags: Vec::new(),
    }
}
