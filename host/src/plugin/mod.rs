//! Plugins: loading a component, recognising its world, and calling its
//! hooks through a pool of warm instances.

pub(crate) mod bundled;
mod capability;
pub(crate) mod host_api;
mod inspect;
mod pool;
mod quarantine;
mod supervisor;
mod world;

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

pub(crate) use capability::wall_now;
pub use capability::{DirGrant, DirMode};
pub use inspect::{ComponentReport, WorldKind, inspect};
pub use pool::PluginFault;
pub use quarantine::QuarantinePolicy;
pub(crate) use supervisor::Counts;

use crate::bindings::{fallback, strategy, wit};
use crate::config::{OnFault, PluginSource, PluginSpec};
use host_api::{HostShared, HostState};
use pool::{Pool, Recipe};
use supervisor::Supervisor;
use world::{FALLBACK_EXPORT, STRATEGY_EXPORT, World};

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

/// The linker every plugin is instantiated with: the host interfaces, and
/// WASI p2 against a context that grants nothing unless configured (see
/// `capability.rs`). A component importing anything else is refused at
/// load.
pub(crate) fn new_linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    strategy::StrategyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// A strategy plugin, ready to call.
pub(crate) struct StrategyPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) on_fault: OnFault,
    pub(crate) hooks: wit::Hooks,
    pool: Pool<strategy::StrategyPlugin>,
    supervisor: Supervisor,
}

/// A fallback handler plugin, ready to call.
pub(crate) struct FallbackPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) on_fault: OnFault,
    pub(crate) records_results: bool,
    pool: Pool<fallback::FallbackPlugin>,
    supervisor: Supervisor,
}

impl StrategyPlugin {
    pub(crate) fn admit(
        &self,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
    ) -> Result<wit::Admission, PluginFault> {
        self.supervisor.run(|| {
            self.pool.call(service, "admit", |b, store| {
                b.mender_plugin_strategy().call_admit(store, call, recent)
            })
        })
    }

    pub(crate) fn on_error(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
    ) -> Result<wit::Decision, PluginFault> {
        self.supervisor.run(|| {
            self.pool.call(service, "on-error", |b, store| {
                b.mender_plugin_strategy()
                    .call_on_error(store, event, recent)
            })
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        self.supervisor.counts()
    }
}

impl FallbackPlugin {
    pub(crate) fn serve(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault> {
        self.supervisor.run(|| {
            self.pool.call(service, "serve", |b, store| {
                b.mender_plugin_fallback_handler()
                    .call_serve(store, event, recorded)
            })
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        self.supervisor.counts()
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
    pub(crate) shared: &'a Arc<HostShared>,
}

/// Reads, compiles, links and initialises the plugin `spec` describes.
pub(crate) fn load(cx: &LoadContext<'_>, spec: &PluginSpec) -> Result<Loaded, LoadError> {
    let (origin, bytes): (String, std::borrow::Cow<'static, [u8]>) = match &spec.source {
        PluginSource::Path(p) => (
            p.display().to_string(),
            std::fs::read(p)
                .map(Into::into)
                .map_err(|e| error(spec, &p.display().to_string(), format!("cannot read: {e}")))?,
        ),
        PluginSource::Bundled(name) => (
            format!("bundled `{name}`"),
            bundled::find(name).map(Into::into).ok_or_else(|| {
                error(
                    spec,
                    &format!("bundled `{name}`"),
                    format!(
                        "no bundled plugin of that name (bundled: {})",
                        bundled::names().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
        ),
    };
    let component = compile(cx.engine, &bytes).map_err(|r| error(spec, &origin, r))?;
    load_compiled(cx, spec, &origin, &component)
}

/// Links and initialises a component already compiled on `cx.engine`
/// (`origin` says where it came from, for errors): what [`load`] does after
/// compiling, for callers that instantiate one component under several
/// configs (the conformance kit).
pub(crate) fn load_compiled(
    cx: &LoadContext<'_>,
    spec: &PluginSpec,
    origin: &str,
    component: &Component,
) -> Result<Loaded, LoadError> {
    let fail = |reason: String| error(spec, origin, reason);
    let kind = world_of(cx.engine, component).map_err(fail)?;
    let imports_wasi = component
        .component_type()
        .imports(cx.engine)
        .any(|(name, _)| name.starts_with("wasi:"));
    let pre = cx.linker.instantiate_pre(component).map_err(|e| {
        fail(format!(
            "imports something the host does not provide: {e:#} (plugins may import mender:plugin/{{log,clock,random,state,metrics}}@0.1.0 and WASI 0.2)"
        ))
    })?;
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let recipe = || Recipe {
        name: name.clone(),
        engine: cx.engine.clone(),
        shared: cx.shared.clone(),
        config_json: spec.config_json.clone(),
        limits: spec.limits.clone(),
        dirs: spec.dirs.clone(),
        off_runtime: imports_wasi,
    };
    match kind {
        WorldKind::Strategy => {
            let pre = strategy::StrategyPlugin::pre(pre).map_err(|e| fail(format!("{e:#}")))?;
            let (pool, info) =
                Pool::<strategy::StrategyPlugin>::new(pre, recipe()).map_err(|f| fail(f.reason))?;
            Ok(Loaded::Strategy(Arc::new(StrategyPlugin {
                name: name.clone(),
                on_fault: spec.on_fault,
                hooks: info.hooks,
                pool,
                supervisor: Supervisor::new(name, cx.shared.clone(), &spec.limits),
            })))
        }
        WorldKind::Fallback => {
            let pre = fallback::FallbackPlugin::pre(pre).map_err(|e| fail(format!("{e:#}")))?;
            let (pool, info) =
                Pool::<fallback::FallbackPlugin>::new(pre, recipe()).map_err(|f| fail(f.reason))?;
            Ok(Loaded::Fallback(Arc::new(FallbackPlugin {
                name: name.clone(),
                on_fault: spec.on_fault,
                records_results: info.records_results,
                pool,
                supervisor: Supervisor::new(name, cx.shared.clone(), &spec.limits),
            })))
        }
    }
}

fn error(spec: &PluginSpec, origin: &str, reason: String) -> LoadError {
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

/// Which world a component implements, judged by its exports.
pub(crate) fn world_of(engine: &Engine, component: &Component) -> Result<WorldKind, String> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let has = |e: &str| exports.iter().any(|x| x == e);
    match (has(STRATEGY_EXPORT), has(FALLBACK_EXPORT)) {
        (true, false) => Ok(WorldKind::Strategy),
        (false, true) => Ok(WorldKind::Fallback),
        (true, true) => Err("exports both the strategy and fallback-handler interfaces; a plugin implements one world".into()),
        (false, false) => {
            let other_version = exports
                .iter()
                .find(|e| e.starts_with("mender:plugin/"))
                .map(|e| format!(" (it exports `{e}`: built against another version of the contract)"))
                .unwrap_or_default();
            Err(format!(
                "exports neither `{STRATEGY_EXPORT}` nor `{FALLBACK_EXPORT}`{other_version}; exports: [{}]",
                exports.join(", ")
            ))
        }
    }
}
