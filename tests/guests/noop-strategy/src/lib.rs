//! Bench and test fixture pinned to contract `mender:plugin@0.1.0`: the
//! floor of a 0.1 decision, and a 0.1 plugin built from Rust beside the
//! SDK's 0.2 ones (`tests/pipeline.rs` runs both in one pipeline).
//!
//! `on-error` takes 0.1's arguments (every string inline) and answers
//! `pass` without looking at them; `admit` allows with no lease; neither
//! calls the host. What a call into it costs is the component model's
//! lifting and lowering of the 0.1 arguments: the least a 0.1 strategy
//! can cost (`host/benches/decision.rs`). It uses wit-bindgen directly on
//! `wit/since_v0.1.0`, as a plugin built before 0.2 did.
//!
//! Config: none (`{}`). Hooks: admit and on-error.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "strategy-plugin",
});

use exports::mender::plugin::strategy::Guest;
use mender::plugin::types::{
    Admission, CallInfo, Decision, ErrorEvent, Grant, Hooks, Outcomes, StrategyInfo,
};

struct NoopStrategy;

impl Guest for NoopStrategy {
    fn init(_config: String) -> Result<StrategyInfo, String> {
        Ok(StrategyInfo {
            hooks: Hooks::ADMIT | Hooks::ON_ERROR,
        })
    }

    fn admit(_call: CallInfo, _recent: Outcomes) -> Admission {
        Admission::Allow(Grant {
            attempt_timeout: None,
            lease: None,
        })
    }

    fn on_error(_event: ErrorEvent, _recent: Outcomes) -> Decision {
        Decision::Pass
    }
}

// Only wasm gets the exported symbols (as in mender-guest): their names are
// not valid in a native linker's version script.
#[cfg(target_arch = "wasm32")]
export!(NoopStrategy);
