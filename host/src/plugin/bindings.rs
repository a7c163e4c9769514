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

// The host's `ErrorKind` and the WIT `error-kind` are the same ten cases;
// the mapping lives here, with the bindings, so the host's failure types
// need not know about Wasm.
use crate::failure::ErrorKind;

impl From<ErrorKind> for wit::ErrorKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Connect => wit::ErrorKind::Connect,
            ErrorKind::Timeout => wit::ErrorKind::Timeout,
            ErrorKind::RateLimited => wit::ErrorKind::RateLimited,
            ErrorKind::Auth => wit::ErrorKind::Auth,
            ErrorKind::Tool => wit::ErrorKind::Tool,
            ErrorKind::Protocol => wit::ErrorKind::Protocol,
            ErrorKind::Resource => wit::ErrorKind::Resource,
            ErrorKind::Cancelled => wit::ErrorKind::Cancelled,
            ErrorKind::Rejected => wit::ErrorKind::Rejected,
            ErrorKind::Unknown => wit::ErrorKind::Unknown,
        }
    }
}

impl From<wit::ErrorKind> for ErrorKind {
    fn from(k: wit::ErrorKind) -> Self {
        match k {
            wit::ErrorKind::Connect => ErrorKind::Connect,
            wit::ErrorKind::Timeout => ErrorKind::Timeout,
            wit::ErrorKind::RateLimited => ErrorKind::RateLimited,
            wit::ErrorKind::Auth => ErrorKind::Auth,
            wit::ErrorKind::Tool => ErrorKind::Tool,
            wit::ErrorKind::Protocol => ErrorKind::Protocol,
            wit::ErrorKind::Resource => ErrorKind::Resource,
            wit::ErrorKind::Cancelled => ErrorKind::Cancelled,
            wit::ErrorKind::Rejected => ErrorKind::Rejected,
            wit::ErrorKind::Unknown => ErrorKind::Unknown,
        }
    }
}
