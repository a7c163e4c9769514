//! [`RuntimeBuilder`]: what the embedder registers (configuration,
//! credential providers, secrets, a state backend, the compiled-plugin
//! cache), and the build that loads every plugin.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::reload::{ConfigSource, ReloadLog};
use super::{BuildError, Runtime, RuntimeInner};
use crate::api::CredentialProvider;
use crate::config::Config;
use crate::host::HostShared;
use crate::host::results::ResultStore;
use crate::host::state::{MemoryState, RoutedState, StateStore};
use crate::pipeline::generation::Loader;
use crate::pipeline::retry_budget::RetryBudgets;
use crate::plugin::Sandbox;
use crate::plugin::cache::ArtifactCache;
use crate::redact::Redactor;

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

    /// Redacts with `shared` (a clone of the log writer's redactor, say),
    /// keeping the secrets registered so far: a secret learnt while running
    /// ([`Runtime::add_secret`]) then reaches both.
    pub fn redactor(mut self, shared: Redactor) -> Self {
        for s in self.redactor.secrets() {
            shared.add_runtime_secret(s);
        }
        self.redactor = shared;
        self
    }

    /// Loads every plugin (compile, link, `init` with its config) and builds
    /// the pipelines. Any error names the plugin and where it is configured.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let Sandbox { engine, linker } = Sandbox::new().map_err(BuildError::engine)?;
        let state: Arc<dyn StateStore> = match self.state {
            Some(store) => store,
            None if !self.config.state.is_shared() => Arc::new(MemoryState::default()),
            None => {
                Arc::new(RoutedState::from_config(&self.config.state).map_err(BuildError::state)?)
            }
        };
        // Shared state means several processes: their clocks must agree.
        let fleet = self.config.state.is_shared() || !state.status().is_empty();
        let shared = Arc::new(HostShared::live(state, self.seed, fleet));
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
                activity: Default::default(),
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
