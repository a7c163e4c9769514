//! Where plugins keep what must outlive an instance.
//!
//! Every key a plugin uses is scoped by the host to (plugin, service), so
//! the store sees a [`ScopedKey`]. The in-memory backend is the default; a
//! shared backend (Redis) can implement the same trait later without any
//! plugin noticing.

mod memory;

pub use memory::MemoryState;

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
}
