//! [`Runtime`] and its builder: the engine, the loaded plugins, every
//! service's pipeline, and what the embedder registered (credential
//! providers, secrets, a state backend).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::cache::{ArtifactCache, CacheStats};
use crate::config::Config;
use crate::generation::{Generation, Loader};
use crate::metrics::PluginMetrics;
use crate::pipeline::Pipeline;
use crate::plugin::host_api::HostShared;
use crate::plugin::{self, Loaded, WorldKind};
use crate::random::RandomSource;
use crate::redact::Redactor;
use crate::reload::{ConfigSource, ReloadLog};
use crate::results::ResultStore;
use crate::retry_budget::RetryBudgets;
use crate::state::{MemoryState, RoutedState, StateStatus, StateStore};

/// A boxed future, as credential providers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Refreshes a service's credentials when a strategy asks for it. The
/// credentials stay with the embedder: mender never sees them, and neither
/// do plugins.
pub trait CredentialProvider: Send + Sync + 'static {
    /// Refresh the credentials of `service`; the next attempt uses them.
    fn refresh<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

impl<F, Fut> CredentialProvider for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn refresh<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self(service.to_owned()))
    }
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] plugin::LoadError),
    /// The engine could not be created.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// A reload could not run to completion (the live configuration is
    /// untouched).
    #[error("reload: {0}")]
    Reload(String),
    /// A state backend could not be set up (e.g. an unusable Redis URL).
    #[error("state: {0}")]
    State(String),
}

/// The resilience runtime. Cheap to clone (`Arc` inside), `Send + Sync`:
/// share one across every task of an agent.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    /// The generation new calls start on; a reload swaps it whole.
    pub(crate) live: ArcSwap<Generation>,
    pub(crate) credentials: HashMap<String, Arc<dyn CredentialProvider>>,
    pub(crate) redactor: Redactor,
    pub(crate) results: ResultStore,
    pub(crate) shared: Arc<HostShared>,
    /// What generations are loaded with. It owns the engine, so the engine
    /// (and its epoch ticker) lives as long as the runtime.
    pub(crate) loader: Loader,
    /// Where a reload reads the configuration from.
    pub(crate) source: Mutex<ConfigSource>,
    /// Held for the whole of a reload: one at a time.
    pub(crate) reloading: Mutex<()>,
    /// What the reloads did.
    pub(crate) reloads: Mutex<ReloadLog>,
    /// The `[state]` table the runtime was built with: the store is made
    /// once, so a reload may not change it.
    pub(crate) state_config: crate::state::StateConfig,
    /// Retry budgets, per service (see `retry_budget.rs`).
    pub(crate) budgets: RetryBudgets,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with no plugins: calls pass through under the default
    /// guardrails until a config is given.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn pipeline(&self, service: &str) -> Arc<Pipeline> {
        self.inner.live.load().pipelines.get(service)
    }

    /// Counters and gauges the plugins reported, by (plugin, service, name).
    pub fn plugin_metrics(&self) -> &PluginMetrics {
        &self.inner.shared.metrics
    }

    /// Each loaded plugin: its name, world, version, hook calls, faults,
    /// quarantine state and whether its newest version was refused.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.inner
            .live
            .load()
            .plugins
            .iter()
            .map(|entry| {
                let (name, world, c) = match &entry.loaded {
                    Loaded::Strategy(s) => (&s.name, WorldKind::Strategy, s.counts()),
                    Loaded::Fallback(f) => (&f.name, WorldKind::Fallback, f.counts()),
                };
                PluginStatus {
                    name: name.to_string(),
                    world,
                    version: entry.version,
                    sha256: entry.content.to_string(),
                    reload_error: entry.reload_error.clone(),
                    hook_calls: c.calls,
                    faults: c.faults,
                    skipped: c.skipped,
                    quarantines: c.quarantines,
                    quarantined_for_ms: c
                        .quarantined_until_ms
                        .map(|u| u.saturating_sub(self.now_ms())),
                }
            })
            .collect()
    }

    /// `text` with every registered secret (and anything that looks like a
    /// credential) replaced by `[REDACTED]`, as the host does for plugins
    /// and logs.
    pub fn redact(&self, text: &str) -> String {
        self.inner.redactor.redact(text)
    }

    /// Milliseconds on the host clock since the runtime was built (what
    /// plugins see as `clock.now`). When some state is in Redis, the clock
    /// counts from the Unix epoch instead, so that every process reads the
    /// same time.
    pub fn now_ms(&self) -> u64 {
        self.inner.shared.now_ms()
    }

    /// What the compiled-plugin cache did so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.loader.cache.stats()
    }

    /// The health of each shared state backend (Redis): whether state is
    /// shared right now or served locally while Redis is unreachable. Empty
    /// when all state is in memory.
    pub fn state_status(&self) -> Vec<StateStatus> {
        self.inner.shared.state.status()
    }
}

/// A loaded plugin, as status views show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginStatus {
    /// The plugin's name in the config.
    pub name: String,
    /// Its world.
    pub world: WorldKind,
    /// The generation its serving version was loaded in (1: at build).
    pub version: u64,
    /// SHA-256 of its serving version's component, hex.
    pub sha256: String,
    /// `Some` while its newest version is refused (the serving version is
    /// an older one): why, as `reload failed: …` explains.
    pub reload_error: Option<String>,
    /// Hook calls made into the plugin so far (`init` excluded).
    pub hook_calls: u64,
    /// Hook calls that trapped, timed out, failed or answered over the
    /// limits so far.
    pub faults: u64,
    /// Hook calls skipped because the plugin was quarantined.
    pub skipped: u64,
    /// Times the plugin was quarantined.
    pub quarantines: u64,
    /// How long the current quarantine lasts still, if one is in force.
    pub quarantined_for_ms: Option<u64>,
}

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    config: Config,
    origin: String,
    source: Option<ConfigSource>,
    cache: CacheChoice,
    seed: Option<u64>,
    state: Option<Arc<dyn StateStore>>,
    credentials: HashMap<String, Arc<dyn CredentialProvider>>,
    redactor: Redactor,
}

impl RuntimeBuilder {
    /// Uses this configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.source = Some(ConfigSource::Value(Box::new(config.clone())));
        self.config = config;
        self.origin = "<config>".into();
        self
    }

    /// Reads and validates `mender.toml` from `path`.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref();
        self.config = Config::from_file(path)?;
        self.origin = path.display().to_string();
        self.source = Some(ConfigSource::File(path.to_owned()));
        Ok(self)
    }

    /// Parses config text; `origin` names it in errors, relative plugin
    /// paths resolve against the current directory.
    pub fn config_str(mut self, text: &str, origin: &str) -> Result<Self, BuildError> {
        self.config = Config::parse(text, origin, Path::new("."))?;
        self.origin = origin.to_owned();
        self.source = Some(ConfigSource::Value(Box::new(self.config.clone())));
        Ok(self)
    }

    /// Seeds the random numbers plugins get, so runs replay exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Keeps plugin state in `store` instead of process memory.
    pub fn state_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.state = Some(store);
        self
    }

    /// Registers the credential provider of `service` (for strategies that
    /// answer `refresh-credentials`).
    pub fn credentials(
        mut self,
        service: impl Into<String>,
        provider: impl CredentialProvider,
    ) -> Self {
        self.credentials.insert(service.into(), Arc::new(provider));
        self
    }

    /// Keeps compiled plugins in `dir` (default: `$MENDER_CACHE_DIR`, else
    /// the user's cache directory, e.g. `~/.cache/mender`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = CacheChoice::Dir(dir.into());
        self
    }

    /// Compiles every plugin at load, keeping nothing on disk.
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Off;
        self
    }

    /// Registers a secret value: redacted wherever it appears in an error
    /// message, before any plugin or log sees it.
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        self.redactor.add_secret(value);
        self
    }

    /// Loads every plugin (compile, link, `init` with its config) and builds
    /// the pipelines. Any error names the plugin and where it is configured.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let engine =
            crate::engine::new_engine().map_err(|e| BuildError::Engine(format!("{e:#}")))?;
        crate::engine::start_epoch_ticker(&engine);
        let linker =
            plugin::new_linker(&engine).map_err(|e| BuildError::Engine(format!("{e:#}")))?;
        let started = Instant::now();
        let wall_at_epoch = plugin::wall_now();
        let state: Arc<dyn StateStore> = match self.state {
            Some(store) => store,
            None if !self.config.state.is_shared() => Arc::new(MemoryState::default()),
            None => {
                Arc::new(RoutedState::from_config(&self.config.state).map_err(BuildError::State)?)
            }
        };
        let shared = Arc::new(HostShared {
            state: state.clone(),
            random: RandomSource::new(self.seed),
            epoch: started,
            metrics: PluginMetrics::default(),
            wall_at_epoch,
            origin_ms: if self.config.state.is_shared() || !state.status().is_empty() {
                crate::clock::duration_ms(wall_at_epoch)
            } else {
                0
            },
        });
        let cache_root = match self.cache {
            CacheChoice::Default => ArtifactCache::default_root(),
            CacheChoice::Dir(dir) => Some(dir),
            CacheChoice::Off => None,
        };
        let loader = Loader {
            cache: ArtifactCache::new(cache_root.as_deref(), &engine),
            engine,
            linker,
            shared: shared.clone(),
        };
        let first = loader.first(&self.config, &self.origin)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                live: ArcSwap::from_pointee(first),
                credentials: self.credentials,
                redactor: self.redactor,
                results: ResultStore::default(),
                shared,
                loader,
                source: Mutex::new(
                    self.source
                        .unwrap_or_else(|| ConfigSource::Value(Box::new(self.config.clone()))),
                ),
                reloading: Mutex::new(()),
                reloads: Mutex::new(ReloadLog::default()),
                state_config: self.config.state.clone(),
                budgets: RetryBudgets::default(),
            }),
        })
    }
}

/// Where compiled plugins are cached.
#[derive(Default)]
enum CacheChoice {
    /// `$MENDER_CACHE_DIR` or the user's cache directory.
    #[default]
    Default,
    Dir(PathBuf),
    Off,
}
