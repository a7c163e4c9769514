//! Warm instances of one plugin, shared by every task that calls it.
//!
//! A wasmtime store is not shareable, so concurrency comes from instances:
//! a hook call takes an idle instance (or creates one from the pre-linked
//! `InstancePre` and runs `init`), uses it, and puts it back. At most
//! `pool_size` idle instances are kept; under more concurrency, extra
//! instances are created and dropped after use. An instance whose call
//! failed is never reused: a trapped instance cannot be entered again, and
//! one that misbehaved may hold poisoned memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap};

use super::capability::wasi_ctx;
use crate::api::PluginFault;
use crate::config::DirGrant;
use super::host_api::{CallClock, HostState};
use crate::host::HostShared;
use super::world::World;
use crate::config::Limits;
use crate::plugin::sandbox::ticks_for;

/// Table elements per instance: enough for any real guest's function
/// tables, small enough that a table-growth bomb stops early.
const TABLE_ELEMENTS: usize = 100_000;

/// One instance and the store that owns it.
struct Warm<W> {
    store: Store<HostState>,
    bindings: W,
}

/// What every instance of a plugin is made with.
pub(crate) struct Recipe {
    pub(crate) name: Arc<str>,
    pub(crate) engine: Engine,
    pub(crate) shared: Arc<HostShared>,
    /// The plugin's config, as JSON, for `init`.
    pub(crate) config_json: String,
    pub(crate) limits: Limits,
    /// Directories its WASI context is granted.
    pub(crate) dirs: Vec<DirGrant>,
    /// Whether the component imports WASI (see `Pool::off_runtime`).
    pub(crate) off_runtime: bool,
}

/// The instances of one plugin.
pub(crate) struct Pool<W: World> {
    name: Arc<str>,
    engine: Engine,
    pre: W::Pre,
    shared: Arc<HostShared>,
    config_json: String,
    limits: Limits,
    dirs: Vec<DirGrant>,
    /// Run hook calls off the tokio runtime thread: set for components
    /// that import WASI, whose sync bindings block on tokio internally
    /// and would panic on a runtime thread.
    off_runtime: bool,
    idle: Mutex<Vec<Warm<W>>>,
}

impl<W: World> Pool<W> {
    /// Creates the pool and its first instance, whose `init` answer is
    /// returned: a plugin whose `init` fails is rejected at load.
    pub(crate) fn new(pre: W::Pre, recipe: Recipe) -> Result<(Self, W::Info), PluginFault> {
        let Recipe {
            name,
            engine,
            shared,
            config_json,
            limits,
            dirs,
            off_runtime,
        } = recipe;
        let pool = Pool {
            name,
            engine,
            pre,
            shared,
            config_json,
            limits,
            dirs,
            off_runtime,
            idle: Mutex::new(Vec::new()),
        };
        let (warm, info) = pool.fresh()?;
        pool.put_back(warm);
        Ok((pool, info))
    }

    fn fault(&self, reason: impl Into<String>) -> PluginFault {
        PluginFault {
            plugin: self.name.to_string(),
            reason: reason.into(),
        }
    }

    /// A new instance, initialised with the plugin's config.
    fn fresh(&self) -> Result<(Warm<W>, W::Info), PluginFault> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .table_elements(TABLE_ELEMENTS)
            // Report a refused memory.grow as a trap naming the limit,
            // instead of letting the guest see -1 and abort obscurely.
            .trap_on_grow_failure(true)
            .build();
        let clock = Arc::new(CallClock::new());
        clock.begin(self.shared.now_ms());
        // Only a component that imports WASI gets a configured context: the
        // others can never reach it, and must not draw on the host's seeded
        // random numbers for it (that would shift every plugin's jitter).
        let wasi = if self.off_runtime {
            wasi_ctx(&self.dirs, &self.shared, &clock).map_err(|e| self.fault(format!("{e:#}")))?
        } else {
            wasmtime_wasi::WasiCtx::builder().build()
        };
        let mut state = HostState::new(self.name.clone(), self.shared.clone(), limits, clock, wasi);
        state.state_quota = self.limits.state_quota;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks_for(self.limits.init_timeout));
        let (pre, config) = (&self.pre, &self.config_json);
        let started = off_runtime(self.off_runtime, || {
            let bindings = W::instantiate(pre, &mut store).map_err(|e| (e, "instantiating"))?;
            let info = bindings
                .init(&mut store, config)
                .map_err(|e| (e, "in init"))?;
            Ok::<_, (wasmtime::Error, &str)>((bindings, info))
        });
        let (bindings, info) = started
            .map_err(|(e, during)| self.fault(describe(&e, during, self.limits.init_timeout)))?;
        let info = info.map_err(|msg| self.fault(format!("rejected its config: {msg}")))?;
        Ok((Warm { store, bindings }, info))
    }

    fn put_back(&self, warm: Warm<W>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.limits.pool_size {
            idle.push(warm);
        }
    }

    /// Runs one hook on a warm instance on behalf of `service`, within the
    /// hook deadline. `hook` names the hook in fault reasons.
    pub(crate) fn call<R: Send>(
        &self,
        service: &Arc<str>,
        hook: &str,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, PluginFault> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut warm = match taken {
            Some(w) => w,
            None => self.fresh()?.0,
        };
        warm.store.data_mut().begin_call(service);
        warm.store
            .set_epoch_deadline(ticks_for(self.limits.hook_timeout));
        let Warm { store, bindings } = &mut warm;
        let result = off_runtime(self.off_runtime, || f(bindings, store));
        warm.store.data_mut().end_call();
        match result {
            Ok(value) => {
                self.put_back(warm);
                Ok(value)
            }
            Err(e) => Err(self.fault(describe(
                &e,
                &format!("in {hook}"),
                self.limits.hook_timeout,
            ))),
        }
    }
}

/// Runs `f` on this thread, or, when `yes`, on a scoped thread outside any
/// tokio runtime (WASI's sync bindings call `block_on`, which panics on a
/// runtime thread). A panic in `f` is resumed here, as if run inline.
fn off_runtime<R: Send>(yes: bool, f: impl FnOnce() -> R + Send) -> R {
    if !yes {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A trap or host error, said for people: what happened, where.
fn describe(err: &wasmtime::Error, during: &str, deadline: Duration) -> String {
    if let Some(trap) = err.downcast_ref::<Trap>() {
        let what = match trap {
            Trap::Interrupt => format!("exceeded its deadline of {deadline:?}"),
            Trap::StackOverflow => "overflowed its stack".to_owned(),
            Trap::UnreachableCodeReached => "trapped (panic or `unreachable`)".to_owned(),
            Trap::MemoryOutOfBounds => "accessed memory out of bounds".to_owned(),
            Trap::AllocationTooLarge => "exceeded its memory limit".to_owned(),
            other => format!("trapped: {other}"),
        };
        return format!("{what} {during}");
    }
    let text = format!("{err:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory minimum size") {
        return format!("exceeded its memory limit {during} ({text})");
    }
    format!("failed {during}: {text}")
}
