//! mender: calls that survive failure.
//!
//! Wrap each call an agent makes (an MCP tool call, an HTTP request) in
//! [`Runtime::call`]. When an attempt fails, the error becomes an event
//! that sandboxed WebAssembly strategy plugins judge — retry after a delay,
//! serve a fallback, refresh credentials, refuse while a circuit is open,
//! give up — within host [`Guardrails`] no plugin can exceed. A successful
//! call costs a few atomic operations and no Wasm call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mender::{CallSpec, Runtime};
//!
//! let rt = Runtime::builder().config_file("mender.toml")?.build()?;
//! let reply = rt
//!     .call(CallSpec::new("github", "tools/call:list_issues").idempotent(true), |_attempt| async {
//!         // the real call; its error type implements `mender::Classify`
//!         Ok::<String, std::io::Error>("[]".into())
//!     })
//!     .await?;
//! println!("{} (from {:?})", reply.value, reply.served_by);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod admission;
mod bindings;
mod cache;
mod call;
mod clock;
pub mod config;
pub mod conformance;
mod engine;
mod event;
mod generation;
mod guardrails;
mod layer;
pub mod mcp;
mod metrics;
mod outcomes;
mod pipeline;
pub mod plugin;
mod random;
mod ranges;
mod redact;
mod reload;
mod results;
mod retry_budget;
mod runtime;
mod smoke;
mod spec;
pub mod state;
mod watch;

pub use cache::{CACHE_DIR_ENV, CacheStats};
pub use config::{Config, ConfigError, Limits, OnFault};
pub use event::{Classify, ErrorKind, Failure, HttpError, retry_after};
pub use generation::ReloadReport;
pub use guardrails::{Guardrails, RetryBudget, RetryRefusal};
pub use layer::{
    FALLBACK_HEADER, HttpPolicy, LayerPolicy, ResilienceError, ResilienceLayer, Resilient,
};
pub use metrics::PluginMetrics;
pub use plugin::{
    ComponentReport, DirGrant, DirMode, LoadError, PluginFault, QuarantinePolicy, WorldKind,
    inspect,
};
pub use redact::{REDACTED, Redactor};
pub use reload::ReloadStatus;
pub use runtime::{
    BoxFuture, BuildError, CredentialProvider, PluginStatus, Runtime, RuntimeBuilder,
};
pub use spec::{Attempt, AttemptRecord, CallError, CallSpec, Json, Payload, Reply, ServedBy, Step};
pub use state::StateStatus;
pub use watch::{DEBOUNCE, ReloadResult, WatchError, Watcher};

/// The names of the plugins compiled into this build.
pub fn bundled_plugins() -> impl Iterator<Item = &'static str> {
    plugin::bundled::names()
}
