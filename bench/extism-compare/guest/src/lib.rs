//! The bundled exponential-backoff strategy as an Extism plugin, written as
//! an Extism plugin is: the event comes in as JSON, the decision goes out
//! as JSON. The policy is the same plain-Rust code the native comparison
//! runs (`bench/logic/backoff.rs`), and like mender's plugin it asks the
//! host for one random number per decision and writes one debug line
//! (which Extism drops in the guest when debug logging is off).

use extism_pdk::{FnResult, Json, WithReturnCode, plugin_fn};
use serde::{Deserialize, Serialize};

#[path = "../../../logic/backoff.rs"]
#[allow(dead_code)]
mod backoff;

/// The WIT `error-event`, as JSON.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub struct ErrorEvent {
    service: String,
    operation: String,
    kind: String,
    message: String,
    status: Option<i32>,
    retry_after: Option<u64>,
    attempt: u32,
    elapsed: u64,
    deadline_left: Option<u64>,
    idempotent: bool,
    tags: Vec<(String, String)>,
}

/// The WIT `decision`, as JSON.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case", tag = "decision", content = "value")]
pub enum Decision {
    Pass,
    Retry(u64),
    Fail(String),
}

#[link(wasm_import_module = "extism:host/user")]
unsafe extern "C" {
    /// The host's random numbers (mender's `random.next-u64`).
    fn next_u64() -> u64;
}

#[plugin_fn]
pub fn on_error(Json(event): Json<ErrorEvent>) -> FnResult<Json<Decision>> {
    let Some(kind) = backoff::Kind::parse(&event.kind) else {
        return Err(WithReturnCode::new(
            extism_pdk::Error::msg(format!("unknown error kind `{}`", event.kind)),
            1,
        ));
    };
    let facts = backoff::Event {
        kind,
        message: &event.message,
        attempt: event.attempt,
        retry_after: event.retry_after,
        deadline_left: event.deadline_left,
    };
    // SAFETY: a host function with no arguments that returns an i64.
    let random = unsafe { next_u64() };
    let decision = match backoff::DEFAULTS.decide(&facts, random) {
        backoff::Decision::Pass => Decision::Pass,
        backoff::Decision::Retry(ms) => Decision::Retry(ms),
        backoff::Decision::Fail(reason) => Decision::Fail(reason),
    };
    extism_pdk::debug!(
        "{} attempt {} failed ({}): {:?}",
        event.operation,
        event.attempt,
        event.kind,
        serde_json::to_string(&decision)
    );
    Ok(Json(decision))
}
