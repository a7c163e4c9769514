//! Bench fixture: the floor of a Wasm decision on contract 0.2, the
//! counterpart of `noop-strategy` (0.1). `on-error` answers `pass` and
//! `admit` allows with no lease, reading nothing; with 0.2's scalar-only
//! arguments no string crosses into the guest, so a call into it costs
//! the component model's lowering of a few registers plus the SDK's
//! dispatch (`host/benches/decision.rs` runs both floors side by side).
//!
//! Config: none (`{}`). Hooks: admit and on-error.

use mender_guest::prelude::*;

struct NoopStrategy;

impl Strategy for NoopStrategy {
    type Config = NoConfig;

    fn init(_config: NoConfig) -> Result<Self, String> {
        Ok(NoopStrategy)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }
}

mender_guest::export_strategy!(NoopStrategy);
