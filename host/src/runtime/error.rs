//! Why a runtime could not be built, and why a reload was refused whole.

use crate::config::ConfigError;
use crate::plugin::LoadError;

/// An error from below (wasmtime, a state backend), kept as the source.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] LoadError),
    /// The engine could not be created.
    #[error("wasmtime engine: {0}")]
    Engine(#[source] Source),
    /// A state backend could not be set up (e.g. an unusable Redis URL).
    #[error("state: {0}")]
    State(#[source] Source),
}

impl BuildError {
    pub(crate) fn engine(e: anyhow::Error) -> Self {
        BuildError::Engine(format!("{e:#}").into())
    }

    pub(crate) fn state(e: String) -> Self {
        BuildError::State(e.into())
    }
}

/// Why a reload was refused whole (the live configuration is untouched).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin has no version that loads (a new one that fails, and no
    /// previous one to keep), or the pipelines cannot be built.
    #[error(transparent)]
    Plugin(#[from] LoadError),
    /// The `[state]` table changed: that needs a restart.
    #[error(
        "reload: {origin}: the [state] backend cannot change while the runtime runs (its state would be lost or split); restart to apply it. Nothing of this configuration was applied"
    )]
    StateChanged {
        /// The configuration's file (or `<config>`).
        origin: String,
    },
    /// The blocking task that ran the reload panicked or was cancelled.
    #[error("reload: the reload task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}
