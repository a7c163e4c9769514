//! Contract `mender:plugin@0.1.0` (`wit/since_v0.1.0/`): the first
//! contract, frozen. Its records are also the host's internal vocabulary
//! (see the parent module).
//!
//! The fallback world reuses the strategy world's generated interfaces
//! (`with`), so there is one Rust type per WIT type and one implementation
//! of each host interface.

/// The `strategy-plugin` world, and with it every shared interface.
pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "strategy-plugin",
        imports: {
            "mender:plugin/log": trappable,
            "mender:plugin/state": trappable,
            "mender:plugin/metrics": trappable,
        },
    });
}

/// The `fallback-plugin` world.
pub mod fallback {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "fallback-plugin",
        with: {
            "mender:plugin/types": super::strategy::mender::plugin::types,
            "mender:plugin/log": super::strategy::mender::plugin::log,
            "mender:plugin/clock": super::strategy::mender::plugin::clock,
            "mender:plugin/random": super::strategy::mender::plugin::random,
            "mender:plugin/state": super::strategy::mender::plugin::state,
            "mender:plugin/metrics": super::strategy::mender::plugin::metrics,
        },
    });
}
