//! Where plugins keep what must outlive an instance.
//!
//! Every key a plugin uses is scoped by the host to (plugin, service), so
//! the store sees a [`ScopedKey`]. The in-memory backend is the default;
//! [`RedisState`] shares state between agent processes, chosen per service
//! by the `[state]` table of `mender.toml` (see [`config`]). Plugins do not
//! notice which one serves them.

pub mod config;
mod memory;
mod redis;
mod routed;

pub use config::{RedisSettings, StateBackend, StateConfig};
pub use memory::MemoryState;
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
/// milliseconds on the host clock (see [`crate::clock`]).
pub trait StateStore: Send + Sync + 'static {
    /// The value at `key`, if present and not expired.
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String>;
    /// Store a value, expiring `ttl_ms` from now if given.
    fn set(&self, key: ScopedKey, value: String, ttl_ms: Option<u64>, now_ms: u64);
    /// Remove a key.
    fn delete(&self, key: &ScopedKey);
    /// Add `delta` to the integer at `key` (absent, expired or non-integer
    /// counts as 0); `ttl_ms` applies only when the key is created.
    fn increment(&self, key: ScopedKey, delta: i64, ttl_ms: Option<u64>, now_ms: u64) -> i64;
    /// Store `value` only if the current value equals `expected`.
    fn compare_and_swap(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> bool;
    /// The health of each shared backend behind this store (none for
    /// process memory).
    fn status(&self) -> Vec<StateStatus> {
        Vec::new()
    }
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
