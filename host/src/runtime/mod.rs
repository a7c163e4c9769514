//! [`Runtime`] and its builder: the engine, the loaded plugins, every
//! service's pipeline, and what the embedder registered (credential
//! providers, secrets, a state backend).

mod builder;
mod error;
mod metrics;
pub(crate) mod reload;
#[cfg(feature = "watch")]
pub(crate) mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use builder::RuntimeBuilder;
pub use error::{BuildError, ReloadError};
pub use metrics::describe_metrics;

use crate::api::{Attempt, CallError, CallSpec, CredentialProvider, Payload, Reply};
use crate::call::CallContext;
use crate::call::activity::{Activity, ActivitySnapshot};
use crate::failure::Classify;
use crate::host::HostShared;
use crate::host::metrics::PluginMetrics;
use crate::host::results::ResultStore;
use crate::host::state::StateStatus;
use crate::pipeline::Pipeline;
use crate::pipeline::generation::{Generation, Loader};
use crate::pipeline::retry_budget::RetryBudgets;
use crate::plugin::cache::CacheStats;
use crate::plugin::{Loaded, WorldKind};
use crate::redact::Redactor;
use reload::{ConfigSource, ReloadLog};

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
    pub(crate) state_config: crate::host::state::StateConfig,
    /// Retry budgets, per service (see `retry_budget.rs`).
    pub(crate) budgets: RetryBudgets,
    /// Recent calls and decisions (`Runtime::activity`).
    pub(crate) activity: Activity,
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

    /// Runs `attempt` under the service's pipeline until it succeeds, a
    /// fallback answers, or the pipeline gives up.
    ///
    /// ```no_run
    /// # async fn demo(rt: mender::Runtime) {
    /// use mender::{CallSpec, Failure, ErrorKind};
    /// let reply = rt
    ///     .call(CallSpec::new("github", "list_issues").idempotent(true), |attempt| async move {
    ///         // ... the real call; errors must implement `Classify`
    ///         Ok::<String, Failure>(format!("issues (attempt {})", attempt.number))
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub fn call<T, E, F, Fut>(
        &self,
        spec: CallSpec,
        attempt: F,
    ) -> impl Future<Output = Result<Reply<T>, CallError<E>>>
    where
        T: Payload,
        E: Classify,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Not an `async fn` around `run`: that would be one more layer
        // of future, moved whole on its way in, on every call. The
        // service's pipeline is still looked up at the first poll.
        let inner = &*self.inner;
        let cx = move |spec: &CallSpec| CallContext {
            pipeline: self.pipeline(&spec.service),
            host: &inner.shared,
            redactor: &inner.redactor,
            results: &inner.results,
            credentials: &inner.credentials,
            budgets: &inner.budgets,
            activity: &inner.activity,
        };
        crate::call::run(cx, spec, attempt)
    }

    /// Each service's last minute (calls, failure rate, p50/p99, retries,
    /// fallbacks) and the latest decisions, newest first: what a live
    /// view shows. Redacted like everything else the host reports.
    pub fn activity(&self) -> ActivitySnapshot {
        self.inner.activity.snapshot()
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
                let (name, world, contract, c) = match &entry.loaded {
                    Loaded::Strategy(s) => (&s.name, WorldKind::Strategy, s.contract, s.counts()),
                    Loaded::Fallback(f) => (&f.name, WorldKind::Fallback, f.contract, f.counts()),
                };
                PluginStatus {
                    name: name.to_string(),
                    world,
                    contract,
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

    /// Registers a secret learnt while running (an OAuth access token):
    /// redacted from then on wherever this runtime redacts, and by every
    /// redactor shared with it through [`RuntimeBuilder::redactor`].
    pub fn add_secret(&self, secret: impl Into<String>) {
        self.inner.redactor.add_runtime_secret(secret);
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
    /// The contract version its component targets.
    pub contract: crate::plugin::Contract,
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
