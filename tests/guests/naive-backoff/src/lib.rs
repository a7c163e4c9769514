//! Test fixture: a deliberately wrong backoff, for the conformance kit.
//!
//! It is what a hurried exponential backoff looks like: it retries every
//! failure after a fixed 100 ms, whatever the kind (auth included), the
//! attempt number, `Retry-After` or the deadline. Run against
//! `plugins/exponential-backoff/conformance`, it must fail, and the report
//! must say where and how (`tests/conformance.rs`).
//!
//! Config: anything (ignored). Hooks: on-error.

use mender_guest::prelude::*;

struct NaiveBackoff;

impl Strategy for NaiveBackoff {
    type Config = serde::de::IgnoredAny;

    fn init(_config: serde::de::IgnoredAny) -> Result<Self, String> {
        Ok(NaiveBackoff)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_ERROR
    }

    fn on_error(&self, _event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        Decision::retry_after(100)
    }
}

mender_guest::export_strategy!(NaiveBackoff);
