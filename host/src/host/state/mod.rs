//! Where plugins keep what must outlive an instance.
//!
//! Every key a plugin uses is scoped by the host to (plugin, service), so
//! the store sees a [`ScopedKey`]. The in-memory backend is the default;
//! [`RedisState`] shares state between agent processes, chosen per service
//! by the `[state]` table of `mender.toml` (see [`StateConfig`]). Plugins do not
//! notice which one serves them. Every plugin write counts against the
//! scope's [`StateQuota`] (see [`quota`]), on both backends.

mod batch;
mod memory;
pub mod quota;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_quota;
mod routed;

pub use crate::config::{RedisSettings, StateBackend, StateConfig};
pub use batch::{BatchOp, BatchResult, MAX_BATCH_OPS, StateScope};
pub use memory::MemoryState;
pub use quota::{QuotaExceeded, StateQuota};
#[cfg(feature = "redis")]
pub use redis::RedisState;
pub use routed::RoutedState;

use std::sync::Arc;

/// A key as stored: the plugin's own key inside its (plugin, service) scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopedKey {
    /// The plugin's name in `mender.toml`.
    pub plugin: Arc<str>,
    /// The service the plugin was called for.
    pub service: Arc<str>,
    /// The plugin's key.
    pub key: String,
}

/// A key/value store with per-key atomic operations and TTLs. Times are
/// milliseconds on the host clock (see `host/clock.rs`).
///
/// The writes come in two forms: `*_within` counts against a
/// [`StateQuota`] for the key's (plugin, service) scope and refuses what
/// would exceed it (what plugins use); `set`, `increment` and
/// `compare_and_swap` are the same without a bound.
pub trait StateStore: Send + Sync + 'static {
    /// The value at `key`, if present and not expired.
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String>;
    /// Store a value, expiring `ttl_ms` from now if given.
    fn set_within(
        &self,
        key: ScopedKey,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded>;
    /// Remove a key.
    fn delete(&self, key: &ScopedKey);
    /// Add `delta` to the integer at `key` (absent, expired or non-integer
    /// counts as 0); `ttl_ms` applies only when the key is created.
    fn increment_within(
        &self,
        key: ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded>;
    /// Store `value` only if the current value equals `expected`.
    fn compare_and_swap_within(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<bool, QuotaExceeded>;

    /// Runs `ops` on keys of `scope`, in order, with no other operation on
    /// the scope in between (see [`BatchOp`]): one round trip on a shared
    /// backend. A write the quota refuses ends the batch with the error;
    /// the operations before it stay done.
    fn batch_within(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded>;

    /// [`set_within`](StateStore::set_within) without a quota.
    fn set(&self, key: ScopedKey, value: String, ttl_ms: Option<u64>, now_ms: u64) {
        let unbounded = self.set_within(key, value, ttl_ms, now_ms, StateQuota::UNLIMITED);
        debug_assert!(unbounded.is_ok());
    }
    /// [`increment_within`](StateStore::increment_within) without a quota.
    fn increment(&self, key: ScopedKey, delta: i64, ttl_ms: Option<u64>, now_ms: u64) -> i64 {
        self.increment_within(key, delta, ttl_ms, now_ms, StateQuota::UNLIMITED)
            .unwrap_or(0)
    }
    /// [`compare_and_swap_within`](StateStore::compare_and_swap_within)
    /// without a quota.
    fn compare_and_swap(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> bool {
        self.compare_and_swap_within(key, expected, value, ttl_ms, now_ms, StateQuota::UNLIMITED)
            .unwrap_or(false)
    }
    /// The health of each shared backend behind this store (none for
    /// process memory).
    fn status(&self) -> Vec<StateStatus> {
        Vec::new()
    }

    /// The retry budget's one operation: count `ask.new_calls` more calls,
    /// then take one retry if the retries so far are under the budget.
    /// Shared backends do it in one atomic round trip; this default does it
    /// with `increment`s (atomic per key, which is all one process needs).
    fn take_retry(&self, ask: RetryAsk, now_ms: u64) -> RetryTake {
        let ttl = Some(ask.ttl_ms);
        let calls = self.increment(ask.calls.clone(), ask.new_calls, ttl, now_ms);
        let retries = self.increment(ask.retries.clone(), 1, ttl, now_ms);
        if retries <= ask.allowed(calls) {
            return RetryTake {
                taken: true,
                calls,
                retries,
            };
        }
        self.increment(ask.retries, -1, ttl, now_ms);
        RetryTake {
            taken: false,
            calls,
            retries: retries - 1,
        }
    }
}

/// A retry budget's question to the store (see [`StateStore::take_retry`]).
#[derive(Clone, Debug)]
pub struct RetryAsk {
    /// The window's call counter.
    pub calls: ScopedKey,
    /// The window's retry counter.
    pub retries: ScopedKey,
    /// Calls made since the counter was last pushed.
    pub new_calls: i64,
    /// Retries allowed as a percentage of calls.
    pub percent: u32,
    /// Retries allowed whatever the calls.
    pub floor: u32,
    /// Expiry of counters created now.
    pub ttl_ms: u64,
}

impl RetryAsk {
    /// Retries the budget allows after `calls` calls.
    pub fn allowed(&self, calls: i64) -> i64 {
        (calls.max(0).saturating_mul(i64::from(self.percent)) / 100).max(i64::from(self.floor))
    }
}

/// What [`StateStore::take_retry`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryTake {
    /// Whether a retry was taken.
    pub taken: bool,
    /// Calls counted in the window.
    pub calls: i64,
    /// Retries counted in the window, this one included if taken.
    pub retries: i64,
}

/// The health of one shared state backend, as `Runtime::state_status`
/// reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateStatus {
    /// The backend's kind (`"redis"`).
    pub backend: &'static str,
    /// Where it is (the URL without its password).
    pub target: String,
    /// The services configured on it; `*` stands for every service
    /// without a `state` table of its own.
    pub services: Vec<String>,
    /// Whether state is shared right now; `false` while the host serves it
    /// from local memory because the backend is unreachable.
    pub shared: bool,
    /// Operations served from local memory because the backend was down.
    pub fallback_ops: u64,
    /// Times the backend became unreachable.
    pub outages: u64,
}
