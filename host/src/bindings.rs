//! Host bindings generated from `wit/`, one module per world.
//!
//! Both worlds import the same host interfaces; the fallback world reuses
//! the strategy world's generated interfaces (`with`), so there is one Rust
//! type per WIT type and one implementation of each host interface.
//!
//! Every import is synchronous (no `async` flag): plugin hooks run for
//! microseconds, inline on the calling task. Host functions that enforce a
//! limit are `trappable`, so exceeding the limit stops the plugin call
//! instead of silently truncating.

#![allow(missing_docs)]

/// The `strategy-plugin` world, and with it every shared interface.
pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit",
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
        path: "../wit",
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

pub use strategy::mender::plugin::types as wit;
