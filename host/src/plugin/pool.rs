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

use super::host_api::{HostShared, HostState};
use super::world::World;
use crate::config::Limits;
use crate::engine::ticks_for;

/// Table elements per instance: enough for any real guest's function
/// tables, small enough that a table-growth bomb stops early.
const TABLE_ELEMENTS: usize = 100_000;

/// Why a plugin could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` {reason}")]
pub struct PluginFault {
    /// The plugin's name.
    pub plugin: String,
    /// What went wrong, for people.
    pub reason: String,
}

/// One instance and the store that owns it.
struct Warm<W> {
    store: Store<HostState>,
    bindings: W,
}

/// The instances of one plugin.
pub(crate) struct Pool<W: World> {
    name: Arc<str>,
    engine: Engine,
    pre: W::Pre,
    shared: Arc<HostShared>,
    config_json: String,
    limits: Limits,
    idle: Mutex<Vec<Warm<W>>>,
}

impl<W: World> Pool<W> {
    /// Creates the pool and its first instance, whose `init` answer is
    /// returned: a plugin whose `init` fails is rejected at load.
    pub(crate) fn new(
        name: Arc<str>,
        engine: Engine,
        pre: W::Pre,
        shared: Arc<HostShared>,
        config_json: String,
        limits: Limits,
    ) -> Result<(Self, W::Info), PluginFault> {
        let pool = Pool {
            name,
            engine,
            pre,
            shared,
            config_json,
            limits,
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
        let state = HostState::new(self.name.clone(), self.shared.clone(), limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks_for(self.limits.init_timeout));
        let bindings = W::instantiate(&self.pre, &mut store)
            .map_err(|e| self.fault(describe(&e, "instantiating", self.limits.init_timeout)))?;
        let info = bindings
            .init(&mut store, &self.config_json)
            .map_err(|e| self.fault(describe(&e, "in init", self.limits.init_timeout)))?
            .map_err(|msg| self.fault(format!("rejected its config: {msg}")))?;
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
    pub(crate) fn call<R>(
        &self,
        service: &Arc<str>,
        hook: &str,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFault> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut warm = match taken {
            Some(w) => w,
            None => self.fresh()?.0,
        };
        warm.store.data_mut().begin_call(service);
        warm.store
            .set_epoch_deadline(ticks_for(self.limits.hook_timeout));
        let result = f(&warm.bindings, &mut warm.store);
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
