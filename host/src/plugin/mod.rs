//! Plugins: loading a component, recognising its world, and calling its
//! hooks through a pool of warm instances.

pub(crate) mod bindings;
pub(crate) mod bundled;
pub(crate) mod cache;
mod capability;
pub(crate) mod current;
mod file;
mod hook;
pub(crate) mod host_api;
mod inspect;
mod limiter;
mod pool;
mod quarantine;
pub(crate) mod sandbox;

pub(crate) use sandbox::Sandbox;
mod supervisor;
mod trial;
mod world;

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use file::{MAX_COMPONENT_BYTES, read_component};
pub(crate) use hook::HookStart;
pub use inspect::{ComponentReport, WorldKind, inspect};
pub(crate) use supervisor::Counts;
pub use trial::{TrialStart, trial_start};

use crate::api::PluginFault;
use crate::config::{OnFault, PluginSource, PluginSpec};
use crate::host::HostShared;
use bindings::{Routed, wit};
use cache::ArtifactCache;
use current::{AdmitAnswer, RecentDetail};
use host_api::HostState;
use pool::{Pool, Recipe, Warm};
use supervisor::Supervisor;
pub use world::Contract;
pub(crate) use world::world_of;
use world::{FallbackWorld, StrategyWorld, World};

/// A plugin that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` ({location}): {reason}")]
pub struct LoadError {
    /// The plugin's name in the config.
    pub plugin: String,
    /// Where it is configured (`file:line`) and where it comes from.
    pub location: String,
    /// What is wrong.
    pub reason: String,
}

/// A strategy plugin, ready to call.
pub(crate) struct StrategyPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) on_fault: OnFault,
    pub(crate) hooks: wit::Hooks,
    /// 0.2: successes slower than this (ms) are counted as its slow calls.
    pub(crate) slow_call_threshold: Option<u64>,
    /// The contract its component targets.
    pub(crate) contract: Contract,
    pool: Pool<StrategyWorld>,
    supervisor: Supervisor,
}

/// A fallback handler plugin, ready to call.
pub(crate) struct FallbackPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) on_fault: OnFault,
    pub(crate) records_results: bool,
    /// The contract its component targets.
    pub(crate) contract: Contract,
    pool: Pool<FallbackWorld>,
    supervisor: Supervisor,
}

impl StrategyPlugin {
    /// `admit` on this thread, with no call deadline: for the smoke check
    /// and the conformance kit, which run off the async runtime.
    pub(crate) fn admit(
        &self,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<AdmitAnswer>, PluginFault> {
        self.admit_on(None, HookStart::unbounded(), service, call, recent, detail)
    }

    /// `admit` for a live call, started at `start` with its budget.
    pub(crate) async fn admit_within(
        self: &Arc<Self>,
        start: HookStart,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<AdmitAnswer>, PluginFault> {
        match placement(&self.supervisor, &self.pool, start) {
            Placement::Here(warm) => self.admit_on(warm, start, service, call, recent, detail),
            Placement::Blocking => {
                let (me, service, call, recent, detail) = (
                    self.clone(),
                    service.clone(),
                    call.clone(),
                    recent.clone(),
                    detail.clone(),
                );
                off_worker(&self.name, move || {
                    me.admit_on(None, start, &service, &call, &recent, &detail)
                })
                .await
            }
        }
    }

    fn admit_on(
        &self,
        warm: Option<Warm<StrategyWorld>>,
        start: HookStart,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<AdmitAnswer>, PluginFault> {
        self.supervisor.run(start, || {
            self.pool.call(warm, start, service, "admit", |b, store| {
                b.admit(store, call, recent, detail)
            })
        })
    }

    /// `on-error` on this thread, with no call deadline (see
    /// [`admit`](Self::admit)).
    pub(crate) fn on_error(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<wit::Decision>, PluginFault> {
        self.on_error_on(None, HookStart::unbounded(), service, event, recent, detail)
    }

    /// `on-error` for a live call, started at `start` with its budget:
    /// on this thread when an instance is warm, else on tokio's blocking
    /// pool, because making an instance may take up to `init-timeout`.
    pub(crate) async fn on_error_within(
        self: &Arc<Self>,
        start: HookStart,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<wit::Decision>, PluginFault> {
        match placement(&self.supervisor, &self.pool, start) {
            Placement::Here(warm) => self.on_error_on(warm, start, service, event, recent, detail),
            Placement::Blocking => {
                let (me, service, event, recent, detail) = (
                    self.clone(),
                    service.clone(),
                    event.clone(),
                    recent.clone(),
                    detail.clone(),
                );
                off_worker(&self.name, move || {
                    me.on_error_on(None, start, &service, &event, &recent, &detail)
                })
                .await
            }
        }
    }

    fn on_error_on(
        &self,
        warm: Option<Warm<StrategyWorld>>,
        start: HookStart,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> Result<Routed<wit::Decision>, PluginFault> {
        self.supervisor.run(start, || {
            self.pool
                .call(warm, start, service, "on-error", |b, store| {
                    b.on_error(store, event, recent, detail)
                })
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        self.supervisor.counts()
    }
}

impl FallbackPlugin {
    /// `serve` on this thread, with no call deadline (see
    /// [`StrategyPlugin::admit`]).
    pub(crate) fn serve(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault> {
        self.serve_on(None, HookStart::unbounded(), service, event, recorded)
    }

    /// `serve` for a live call, started at `start` with its budget (see
    /// [`StrategyPlugin::on_error_within`]).
    pub(crate) async fn serve_within(
        self: &Arc<Self>,
        start: HookStart,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault> {
        match placement(&self.supervisor, &self.pool, start) {
            Placement::Here(warm) => self.serve_on(warm, start, service, event, recorded),
            Placement::Blocking => {
                let (me, service, event, recorded) = (
                    self.clone(),
                    service.clone(),
                    event.clone(),
                    recorded.cloned(),
                );
                off_worker(&self.name, move || {
                    me.serve_on(None, start, &service, &event, recorded.as_ref())
                })
                .await
            }
        }
    }

    fn serve_on(
        &self,
        warm: Option<Warm<FallbackWorld>>,
        start: HookStart,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault> {
        self.supervisor.run(start, || {
            self.pool.call(warm, start, service, "serve", |b, store| {
                b.serve(store, event, recorded)
            })
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        self.supervisor.counts()
    }
}

/// Where a live call's hook runs.
enum Placement<W> {
    /// On the calling task's thread: with this warm instance, or with none
    /// when the plugin is quarantined (the supervisor answers without it).
    Here(Option<Warm<W>>),
    /// On the blocking pool: a new instance must be made first.
    Blocking,
}

fn placement<W: World>(supervisor: &Supervisor, pool: &Pool<W>, start: HookStart) -> Placement<W> {
    if supervisor.quarantined_at(start) {
        return Placement::Here(None);
    }
    match pool.take_idle() {
        Some(warm) => Placement::Here(Some(warm)),
        None => Placement::Blocking,
    }
}

/// Runs `f` on tokio's blocking pool (or here, outside a runtime). The
/// plugin work in `f` is bounded by its epoch deadline, so the blocking
/// thread is released in time even if the caller stops waiting.
async fn off_worker<R: Send + 'static>(
    plugin: &str,
    f: impl FnOnce() -> Result<R, PluginFault> + Send + 'static,
) -> Result<R, PluginFault> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    match runtime.spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(PluginFault {
                plugin: plugin.to_owned(),
                reason: format!("could not run: {e}"),
                cut_off: false,
            }),
        },
    }
}

/// A loaded plugin of either world.
#[derive(Clone)]
pub(crate) enum Loaded {
    Strategy(Arc<StrategyPlugin>),
    Fallback(Arc<FallbackPlugin>),
}

/// Everything loading needs from the runtime.
pub(crate) struct LoadContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) linker: &'a Linker<HostState>,
    pub(crate) cache: &'a ArtifactCache,
}

/// A plugin's component bytes and where they came from.
pub(crate) struct Source {
    /// For messages: the file, or `bundled `NAME``.
    pub(crate) origin: String,
    pub(crate) bytes: std::borrow::Cow<'static, [u8]>,
    /// SHA-256 of `bytes`, hex: computed once, for the cache key and for
    /// telling a changed plugin from an unchanged one.
    pub(crate) sha256: String,
}

/// Reads the component `spec` names.
pub(crate) fn read_source(spec: &PluginSpec) -> Result<Source, LoadError> {
    match &spec.source {
        PluginSource::Path(p) => {
            let origin = p.display().to_string();
            let bytes = read_component(p).map_err(|reason| error(spec, &origin, reason))?;
            Ok(Source::new(origin, bytes.into()))
        }
        PluginSource::Bundled(name) => {
            let origin = format!("bundled `{name}`");
            let bytes = bundled::find(name).ok_or_else(|| {
                error(
                    spec,
                    &origin,
                    format!(
                        "no bundled plugin of that name (bundled: {})",
                        bundled::names().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            Ok(Source::new(origin, bytes.into()))
        }
    }
}

impl Source {
    fn new(origin: String, bytes: std::borrow::Cow<'static, [u8]>) -> Source {
        let sha256 = crate::plugin::cache::sha256_hex(&bytes);
        Source {
            origin,
            bytes,
            sha256,
        }
    }
}

/// A compiled, linked component whose world is known: what instances are
/// made from, for the live host or for a scratch check.
pub(crate) struct Prepared {
    origin: String,
    kind: WorldKind,
    contract: Contract,
    imports_wasi: bool,
    pre: wasmtime::component::InstancePre<HostState>,
}

/// Compiles (or fetches from the cache) and links a component, and finds
/// its world.
pub(crate) fn prepare(
    cx: &LoadContext<'_>,
    spec: &PluginSpec,
    source: &Source,
) -> Result<Prepared, LoadError> {
    let component = cx
        .cache
        .get_or_compile(cx.engine, &source.sha256, || {
            compile(cx.engine, &source.bytes)
        })
        .map_err(|reason| error(spec, &source.origin, reason))?;
    link(cx, spec, &source.origin, &component)
}

/// Finds a compiled component's world and links it (`origin` says where it
/// came from, for errors): what [`prepare`] does after compiling, for
/// callers that instantiate one component under several configs (the
/// conformance kit).
pub(crate) fn link(
    cx: &LoadContext<'_>,
    spec: &PluginSpec,
    origin: &str,
    component: &Component,
) -> Result<Prepared, LoadError> {
    let fail = |reason: String| error(spec, origin, reason);
    let (kind, contract) = world_of(cx.engine, component).map_err(fail)?;
    let imports_wasi = component
        .component_type()
        .imports(cx.engine)
        .any(|(name, _)| name.starts_with("wasi:"));
    let pre = cx.linker.instantiate_pre(component).map_err(|e| {
        fail(format!(
            "imports something the host does not provide: {e:#} (plugins may import mender:plugin/{{log,clock,random,state,metrics}}@0.1.0, those and mender:plugin/current@0.2.0 for contract 0.2, and WASI 0.2)"
        ))
    })?;
    Ok(Prepared {
        origin: origin.to_owned(),
        kind,
        contract,
        imports_wasi,
        pre,
    })
}

/// Makes a plugin from a prepared component: its pool's first instance,
/// initialised with the plugin's config, and its supervisor. `shared` is
/// the host state its instances see.
pub(crate) fn instantiate(
    engine: &Engine,
    shared: &Arc<HostShared>,
    spec: &PluginSpec,
    prepared: &Prepared,
) -> Result<Loaded, LoadError> {
    let fail = |reason: String| error(spec, &prepared.origin, reason);
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let recipe = || Recipe {
        name: name.clone(),
        engine: engine.clone(),
        shared: shared.clone(),
        config_json: spec.config_json.clone(),
        limits: spec.limits.clone(),
        dirs: spec.dirs.clone(),
        off_runtime: prepared.imports_wasi,
    };
    let pre = prepared.pre.clone();
    match prepared.kind {
        WorldKind::Strategy => {
            let pre =
                StrategyWorld::pre(pre, prepared.contract).map_err(|e| fail(format!("{e:#}")))?;
            let (pool, info) =
                Pool::<StrategyWorld>::new(pre, recipe()).map_err(|f| fail(f.reason))?;
            Ok(Loaded::Strategy(Arc::new(StrategyPlugin {
                name: name.clone(),
                on_fault: spec.on_fault,
                hooks: info.hooks,
                slow_call_threshold: info.slow_call_threshold,
                contract: prepared.contract,
                pool,
                supervisor: Supervisor::new(name, shared.clone(), &spec.limits),
            })))
        }
        WorldKind::Fallback => {
            let pre =
                FallbackWorld::pre(pre, prepared.contract).map_err(|e| fail(format!("{e:#}")))?;
            let (pool, info) =
                Pool::<FallbackWorld>::new(pre, recipe()).map_err(|f| fail(f.reason))?;
            Ok(Loaded::Fallback(Arc::new(FallbackPlugin {
                name: name.clone(),
                on_fault: spec.on_fault,
                records_results: info.records_results,
                contract: prepared.contract,
                pool,
                supervisor: Supervisor::new(name, shared.clone(), &spec.limits),
            })))
        }
    }
}

pub(crate) fn error(spec: &PluginSpec, origin: &str, reason: String) -> LoadError {
    LoadError {
        plugin: spec.name.clone(),
        location: format!("{}, {origin}", spec.location),
        reason,
    }
}

/// Compiles component bytes, saying plainly when they are not a component.
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err("not a WebAssembly file (no `\\0asm` header)".into());
    }
    // Byte 4..8 is the version/layer: core modules are 1, components 0xd.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(
            "a core Wasm module, not a component: wrap it with `wasm-tools component new` (or build with a component toolchain)".into(),
        );
    }
    Component::new(engine, bytes).map_err(|e| format!("invalid component: {e:#}"))
}
