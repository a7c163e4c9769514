//! [`Runtime`] and its builder: the engine, the loaded plugins, every
//! service's pipeline, and what the embedder registered (credential
//! providers, secrets, a state backend).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;
use wasmtime::Engine;

use crate::config::Config;
use crate::metrics::PluginMetrics;
use crate::pipeline::{Pipeline, Pipelines};
use crate::plugin::host_api::HostShared;
use crate::plugin::{self, LoadContext, Loaded, WorldKind};
use crate::random::RandomSource;
use crate::redact::Redactor;
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
    pub(crate) pipelines: Pipelines,
    pub(crate) credentials: HashMap<String, Arc<dyn CredentialProvider>>,
    pub(crate) redactor: Redactor,
    pub(crate) results: ResultStore,
    pub(crate) shared: Arc<HostShared>,
    /// Retry budgets, per service (see `retry_budget.rs`).
    pub(crate) budgets: RetryBudgets,
    /// Every loaded plugin, in config order, for status views.
    plugins: Vec<Loaded>,
    /// Kept so the engine (and its epoch ticker) lives as long as the
    /// runtime.
    _engine: Engine,
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
        self.inner.pipelines.get(service)
    }

    /// Counters and gauges the plugins reported, by (plugin, service, name).
    pub fn plugin_metrics(&self) -> &PluginMetrics {
        &self.inner.shared.metrics
    }

    /// Each loaded plugin: its name, world, hook calls, faults and quarantine
    /// state.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.inner
            .plugins
            .iter()
            .map(|p| {
                let (name, world, c) = match p {
                    Loaded::Strategy(s) => (&s.name, WorldKind::Strategy, s.counts()),
                    Loaded::Fallback(f) => (&f.name, WorldKind::Fallback, f.counts()),
                };
                PluginStatus {
                    name: name.to_string(),
                    world,
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

    /// Milliseconds on the host clock since the runtime was built (what
    /// plugins see as `clock.now`). When some state is in Redis, the clock
    /// counts from the Unix epoch instead, so that every process reads the
    /// same time.
    pub fn now_ms(&self) -> u64 {
        self.inner.shared.now_ms()
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
    seed: Option<u64>,
    state: Option<Arc<dyn StateStore>>,
    credentials: HashMap<String, Arc<dyn CredentialProvider>>,
    redactor: Redactor,
}

impl RuntimeBuilder {
    /// Uses this configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.origin = "<config>".into();
        self
    }

    /// Reads and validates `mender.toml` from `path`.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref();
        self.config = Config::from_file(path)?;
        self.origin = path.display().to_string();
        Ok(self)
    }

    /// Parses config text; `origin` names it in errors, relative plugin
    /// paths resolve against the current directory.
    pub fn config_str(mut self, text: &str, origin: &str) -> Result<Self, BuildError> {
        self.config = Config::parse(text, origin, Path::new("."))?;
        self.origin = origin.to_owned();
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
        let cx = LoadContext {
            engine: &engine,
            linker: &linker,
            shared: &shared,
        };
        let mut loaded: HashMap<String, Loaded> = HashMap::new();
        let mut plugins = Vec::new();
        for spec in &self.config.plugins {
            let plugin = plugin::load(&cx, spec)?;
            plugins.push(plugin.clone());
            loaded.insert(spec.name.clone(), plugin);
        }
        let pipelines = Pipelines::build(&self.config, &loaded, &self.origin)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                pipelines,
                credentials: self.credentials,
                redactor: self.redactor,
                results: ResultStore::default(),
                shared,
                budgets: RetryBudgets::default(),
                plugins,
                _engine: engine,
            }),
        })
    }
}
