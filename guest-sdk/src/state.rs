//! The host's key/value store: the only memory that outlives an instance.
//!
//! The host scopes every key to (plugin, service) and makes each operation
//! on one key atomic. Times (`ttl`) are milliseconds on the host clock.
//!
//! The free functions call the host. Logic that should be unit-tested
//! natively can take a [`Store`] instead and be handed [`HostStore`] in the
//! plugin and [`MemoryStore`](crate::testing::MemoryStore) in tests.

use crate::bindings::host::state;

/// The value at `key`, or `None` if absent or expired.
pub fn get(key: &str) -> Option<String> {
    state::get(key)
}

/// Store `value` at `key`, expiring `ttl` from now if given.
pub fn set(key: &str, value: &str, ttl: Option<u64>) {
    state::set(key, value, ttl);
}

/// Remove `key` (nothing happens if it is absent).
pub fn delete(key: &str) {
    state::delete(key);
}

/// Add `delta` to the integer at `key` and return the new value. An absent,
/// expired or non-integer value counts as 0; `ttl` applies only when this
/// call creates the key.
pub fn increment(key: &str, delta: i64, ttl: Option<u64>) -> i64 {
    state::increment(key, delta, ttl)
}

/// Store `value` at `key` only if the current value is `expected` (`None`:
/// only if absent). Returns whether it stored.
pub fn compare_and_swap(key: &str, expected: Option<&str>, value: &str, ttl: Option<u64>) -> bool {
    state::compare_and_swap(key, expected, value, ttl)
}

/// The value at `key` read as a `u64`; `None` if absent or not a number.
pub fn get_u64(key: &str) -> Option<u64> {
    HostStore.get_u64(key)
}

/// Store `value` at `key` as decimal text.
pub fn set_u64(key: &str, value: u64, ttl: Option<u64>) {
    HostStore.set_u64(key, value, ttl);
}

/// The operations of the host's state store, so logic over state can run
/// against the host ([`HostStore`]) or in memory in tests.
pub trait Store {
    /// The value at `key`, or `None` if absent or expired.
    fn get(&self, key: &str) -> Option<String>;

    /// Store `value` at `key`, expiring `ttl` from now if given.
    fn set(&self, key: &str, value: &str, ttl: Option<u64>);

    /// Remove `key`.
    fn delete(&self, key: &str);

    /// Add `delta` to the integer at `key` and return the new value; `ttl`
    /// applies only when this call creates the key.
    fn increment(&self, key: &str, delta: i64, ttl: Option<u64>) -> i64;

    /// Store `value` only if the current value is `expected`; whether it did.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> bool;

    /// The value at `key` read as a `u64`; `None` if absent or not a number.
    fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.trim().parse().ok()
    }

    /// Store `value` at `key` as decimal text.
    fn set_u64(&self, key: &str, value: u64, ttl: Option<u64>) {
        self.set(key, &value.to_string(), ttl);
    }
}

/// The host's state store.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostStore;

impl Store for HostStore {
    fn get(&self, key: &str) -> Option<String> {
        get(key)
    }

    fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        set(key, value, ttl);
    }

    fn delete(&self, key: &str) {
        delete(key);
    }

    fn increment(&self, key: &str, delta: i64, ttl: Option<u64>) -> i64 {
        increment(key, delta, ttl)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> bool {
        compare_and_swap(key, expected, value, ttl)
    }
}
