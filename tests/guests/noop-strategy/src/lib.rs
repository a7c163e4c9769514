//! Bench fixture: the floor of a Wasm decision. `on-error` takes the same
//! arguments as every strategy's and answers `pass` without looking at
//! them, and `admit` allows with no lease; neither calls the host. What a
//! call into it costs is the component model's lifting and lowering of the
//! arguments plus the SDK's dispatch: the least any strategy can cost
//! (`host/benches/decision.rs`).
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
