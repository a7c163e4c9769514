//! Write mender recovery strategies and fallback handlers in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-unknown-unknown` and turned
//! into a WebAssembly component by the host's build. It implements
//! [`Strategy`] (hooks `admit` and `on-error`) or [`FallbackHandler`]
//! (`serve`) and exports it with one macro line. This crate hides the
//! generated bindings: it parses the config, keeps the instance `init`
//! built, and wraps the host's imports ([`log`], [`clock`], [`random`],
//! [`state`], [`metrics`]) in safe functions.
//!
//! It targets contract `mender:plugin@0.2.0` (`wit/since_v0.2.0/`): a hook
//! is passed scalars, and the event's strings are fetched from the host
//! when first read ([`ErrorEvent::operation`](prelude::ErrorEvent::operation)
//! and the like).
//!
//! Rules every plugin lives by (the WIT contract in `wit/since_v0.2.0/`
//! has the details):
//!
//! * Time comes only from [`clock::now`], in milliseconds on the host's
//!   clock, which may be virtual. Never use `std::time`.
//! * Randomness comes only from [`random`], which the host seeds.
//! * Instances are recycled at any time: what must outlive a call goes in
//!   [`state`], scoped by the host to (plugin, service).
//! * A panic traps the instance (guests build with `panic = "abort"`); the
//!   SDK first logs its message and location at `error` level, since
//!   `wasm32-unknown-unknown` has no stderr.
//!
//! # Example
//!
//! A strategy that retries connection failures after a fixed delay:
//!
//! ```
//! use mender_guest::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "kebab-case", deny_unknown_fields)]
//! struct Config {
//!     /// How long to wait before retrying.
//!     #[serde(default = "default_delay")]
//!     delay: Millis,
//! }
//!
//! // 200ms: long enough for a restarted server to accept connections.
//! fn default_delay() -> Millis {
//!     Millis::from_millis(200)
//! }
//!
//! struct FixedDelay {
//!     delay: Millis,
//! }
//!
//! impl Strategy for FixedDelay {
//!     type Config = Config;
//!
//!     fn init(config: Config) -> Result<Self, String> {
//!         Ok(FixedDelay { delay: config.delay })
//!     }
//!
//!     fn hooks(&self) -> Hooks {
//!         Hooks::ON_ERROR
//!     }
//!
//!     fn on_error(&self, event: &ErrorEvent, _recent: &Outcomes) -> Decision {
//!         match event.kind {
//!             ErrorKind::Connect => {
//!                 mender_guest::debug!("retrying {} in {}", event.operation(), self.delay);
//!                 Decision::retry_after(self.delay.get())
//!             }
//!             _ => Decision::Pass,
//!         }
//!     }
//! }
//!
//! mender_guest::export_strategy!(FixedDelay);
//! # fn main() {}
//! ```
//!
//! A fallback handler is the same shape: implement [`FallbackHandler`] and
//! invoke [`export_fallback!`].
//!
//! # Testing
//!
//! Off wasm, the host imports are `unreachable!()`, so keep decisions in
//! pure functions, or write them against [`state::Store`] and test them
//! with [`testing::MemoryStore`] and the event builders in [`testing`].

#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod bindings;
pub mod clock;
pub mod config;
mod event;
mod fallback;
pub mod log;
pub mod metrics;
mod millis;
pub mod random;
pub mod state;
mod strategy;
pub mod testing;
mod types;

pub use config::NoConfig;
pub use fallback::FallbackHandler;
pub use millis::{Millis, ParseMillisError};
pub use strategy::Strategy;
pub use types::UnknownErrorKind;

/// Everything a plugin usually needs: the traits, the WIT types under their
/// own names, [`Millis`], and the host-import modules.
pub mod prelude {
    pub use crate::bindings::host::types::{
        Admission, Decision, ErrorKind, FallbackAnswer, Grant, Hedge, Hooks, Lease, RecordedResult,
        Rejection,
    };
    pub use crate::event::{CallInfo, ErrorEvent, LatencySummary, Outcomes};
    pub use crate::{
        FallbackHandler, Millis, NoConfig, Strategy, clock, log, metrics, random, state,
    };
}

/// What the export macros expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::fallback::exports::mender::plugin::fallback_handler::Guest as FallbackGuest;
    pub use crate::bindings::host::types::{
        CallInfo, ErrorEvent, HandlerInfo, Outcomes, StrategyInfo,
    };
    pub use crate::bindings::strategy::exports::mender::plugin::strategy::Guest as StrategyGuest;
    /// Glue for `export_strategy!`.
    pub mod strategy {
        pub use crate::strategy::{admit, init, on_error};
    }
    /// Glue for `export_fallback!`.
    pub mod fallback {
        pub use crate::fallback::{init, serve};
    }
}
