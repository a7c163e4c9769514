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

mod api;
mod call;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod escape;
mod failure;
pub mod file;
mod host;
mod layer;
mod pipeline;
pub mod plugin;
mod redact;
mod runtime;

pub use api::{
    Attempt, AttemptRecord, BoxFuture, CallError, CallSpec, CredentialProvider, GiveUp, Json,
    Payload, PluginFault, Reply, ServedBy, Step,
};
pub use call::activity::{
    ActivitySnapshot, RECENT_DECISIONS, RecentDecision, ServiceActivity, WINDOW_S,
};
pub use config::{
    Config, ConfigError, DirGrant, DirMode, Guardrails, InFlightLimit, Limits, OnFault,
    QuarantinePolicy, RetryBudget, RetryRefusal,
};
pub use escape::escape_control;
pub use failure::{Classify, ErrorKind, Failure, HttpError, retry_after};
pub use host::metrics::PluginMetrics;
pub use host::state;
pub use host::state::StateStatus;
pub use layer::{
    FALLBACK_HEADER, HttpPolicy, LayerPolicy, ResilienceError, ResilienceLayer, Resilient,
};
pub use pipeline::generation::ReloadReport;
pub use plugin::cache::{CACHE_DIR_ENV, CacheStats};
pub use plugin::{ComponentReport, Contract, LoadError, WorldKind, inspect};
#[cfg(feature = "log-writer")]
pub use redact::RedactingWriter;
pub use redact::{REDACTED, Redactor};
pub use runtime::reload::ReloadStatus;
#[cfg(feature = "watch")]
pub use runtime::watch::{DEBOUNCE, ReloadResult, WatchError, Watcher};
pub use runtime::{
    BuildError, PluginStatus, ReloadError, Runtime, RuntimeBuilder, describe_metrics,
};

/// The names of the plugins compiled into this build.
pub fn bundled_plugins() -> impl Iterator<Item = &'static str> {
    plugin::bundled::names()
}
