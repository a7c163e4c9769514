//! Warm instances of one plugin, shared by every task that calls it.
//!
//! A wasmtime store is not shareable, so concurrency comes from instances:
//! a hook call takes an idle instance (or creates one from the pre-linked
//! `InstancePre` and runs `init`), uses it, and puts it back. At most
//! `pool_size` idle instances are kept; under more concurrency, extra
//! instances are created and dropped after use. An instance whose call
//! failed is never reused: a trapped instance cannot be entered again, and
//! one that misbehaved may hold poisoned memory.
//!
//! A call's deadline bounds every piece of plugin work done for it: a hook,
//! and the instantiation and `init` of a new instance, each stop at the
//! configured limit or when the call's time runs out, whichever is first
//! (the `budget` below). Making a new instance can take up to
//! `init-timeout`, so callers on the async path run it on tokio's blocking
//! pool (see `StrategyPlugin::on_error_within`), never on a runtime worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Engine, Store, Trap};

use super::capability::wasi_ctx;
use super::host_api::{CallClock, HostState};
use super::limiter::InstanceLimiter;
use super::world::World;
use crate::api::PluginFault;
use crate::config::DirGrant;
use crate::config::Limits;
use crate::host::HostShared;
use crate::plugin::HookStart;
use crate::plugin::sandbox::ticks_for;

/// How a fault from `init` refusing the plugin's config begins: the trial
/// start (`trial.rs`) tells it from a component that cannot start at all.
pub(crate) const REJECTED_CONFIG: &str = "rejected its config: ";

/// One instance and the store that owns it.
pub(crate) struct Warm<W> {
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
        let (warm, info) = pool.fresh(None)?;
        pool.put_back(warm);
        Ok((pool, info))
    }

    fn fault(&self, reason: impl Into<String>) -> PluginFault {
        PluginFault {
            plugin: self.name.to_string(),
            reason: reason.into(),
            cut_off: false,
        }
    }

    /// An idle instance, if one is warm.
    pub(crate) fn take_idle(&self) -> Option<Warm<W>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// A new instance, initialised with the plugin's config, within
    /// `init-timeout` and the call's `budget`.
    fn fresh(&self, budget: Option<Duration>) -> Result<(Warm<W>, W::Info), PluginFault> {
        let limit = Limit::new(self.limits.init_timeout, budget);
        let limits = InstanceLimiter::new(self.limits.memory_bytes);
        let clock = Arc::new(CallClock::new());
        clock.begin(self.shared.now_ms(), std::time::Instant::now());
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
        store.set_epoch_deadline(ticks_for(limit.time));
        let (pre, config) = (&self.pre, &self.config_json);
        let started = off_runtime(self.off_runtime, || {
            let bindings = W::instantiate(pre, &mut store).map_err(|e| (e, "instantiating"))?;
            let info = bindings
                .init(&mut store, config)
                .map_err(|e| (e, "in init"))?;
            Ok::<_, (wasmtime::Error, &str)>((bindings, info))
        });
        let (bindings, info) = started.map_err(|(e, during)| limit.fault(self, &e, during))?;
        let info = info.map_err(|msg| self.fault(format!("{REJECTED_CONFIG}{msg}")))?;
        Ok((Warm { store, bindings }, info))
    }

    fn put_back(&self, warm: Warm<W>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.limits.pool_size {
            idle.push(warm);
        }
    }

    /// Runs one hook on behalf of `service` on `warm`, or on an idle
    /// instance, or on a new one; within the hook deadline and the call's
    /// budget, from `start`. `hook` names the hook in fault reasons.
    pub(crate) fn call<R: Send>(
        &self,
        warm: Option<Warm<W>>,
        start: HookStart,
        service: &Arc<str>,
        hook: &str,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, PluginFault> {
        let mut warm = match warm.or_else(|| self.take_idle()) {
            Some(w) => w,
            None => self.fresh(start.budget)?.0,
        };
        // What is left after making an instance is measured by the caller;
        // here the budget is at most what it was, which is safe.
        let limit = Limit::new(self.limits.hook_timeout, start.budget);
        let began_ms = self.shared.ms_at(start.at);
        // The plugin's clock runs on real time from here (`start.at` may
        // be tokio's virtual time, which a paused clock holds still).
        warm.store
            .data_mut()
            .begin_call(service, began_ms, std::time::Instant::now());
        warm.store.set_epoch_deadline(ticks_for(limit.time));
        let Warm { store, bindings } = &mut warm;
        let result = off_runtime(self.off_runtime, || f(bindings, store));
        warm.store.data_mut().end_call();
        match result {
            Ok(value) => {
                self.put_back(warm);
                Ok(value)
            }
            Err(e) => Err(limit.fault(self, &e, &format!("in {hook}"))),
        }
    }
}

/// The least time plugin work gets when the call has (almost) none left:
/// a decision asked for after the deadline (a fallback can still serve)
/// must not be lost to a race with the epoch ticker, which could otherwise
/// interrupt even a hook of microseconds. So plugin work may end at most
/// this (plus one epoch tick) past the call's deadline.
const BUDGET_FLOOR: Duration = Duration::from_millis(20);

/// The time a piece of plugin work may take: its configured limit, or the
/// call's remaining time if that is shorter.
struct Limit {
    time: Duration,
    /// Whether `time` is the call's remaining time rather than the limit.
    by_call: bool,
}

impl Limit {
    fn new(configured: Duration, budget: Option<Duration>) -> Limit {
        match budget.map(|left| left.max(BUDGET_FLOOR)) {
            Some(left) if left < configured => Limit {
                time: left,
                by_call: true,
            },
            _ => Limit {
                time: configured,
                by_call: false,
            },
        }
    }

    /// The fault for `err`, which happened `during` this work.
    fn fault<W: World>(&self, pool: &Pool<W>, err: &wasmtime::Error, during: &str) -> PluginFault {
        let interrupted = matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt));
        if interrupted && self.by_call {
            return PluginFault {
                cut_off: true,
                ..pool.fault(format!(
                    "was stopped by the call's deadline ({:?} left) {during}",
                    self.time
                ))
            };
        }
        pool.fault(describe(err, during, self.time))
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
    if text.contains("memory limit:") || text.contains("memory minimum size") {
        return format!("exceeded its memory limit {during} ({text})");
    }
    if text.contains("table limit:") || text.contains("count too high") {
        return format!("exceeded its resource limits {during} ({text})");
    }
    format!("failed {during}: {text}")
}
