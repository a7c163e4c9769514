//! Helpers for unit-testing plugin logic natively, without a host.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::bindings::host::types::{ErrorKind, LatencySummary};
use crate::event::{CallInfo, ErrorEvent};
use crate::state::{Op, OpResult, Store};

/// An in-memory [`Store`] with the host's semantics (TTLs, atomic
/// increment and compare-and-swap) on a virtual clock you move by hand.
/// It counts the calls made to it ([`MemoryStore::take_trips`]): each is
/// one round trip on a shared store such as Redis, a batch included.
#[derive(Debug, Default)]
pub struct MemoryStore {
    now: Cell<u64>,
    entries: RefCell<BTreeMap<String, Entry>>,
    trips: Cell<u32>,
}

#[derive(Debug)]
struct Entry {
    value: String,
    expires_at: Option<u64>,
}

impl MemoryStore {
    /// An empty store at time 0.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The store's clock, in milliseconds.
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    /// Move the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }

    /// The calls made since the last time this was asked (each a round
    /// trip on a shared store), and start counting again.
    pub fn take_trips(&self) -> u32 {
        self.trips.replace(0)
    }

    fn tick(&self) {
        self.trips.set(self.trips.get() + 1);
    }

    /// The keys currently live, in order (to check what a plugin leaves).
    pub fn keys(&self) -> Vec<String> {
        self.purge();
        self.entries.borrow().keys().cloned().collect()
    }

    fn purge(&self) {
        let now = self.now.get();
        self.entries
            .borrow_mut()
            .retain(|_, e| e.expires_at.is_none_or(|t| t > now));
    }

    fn put(&self, key: &str, value: String, ttl: Option<u64>) {
        let expires_at = ttl.map(|ttl| self.now.get() + ttl);
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), Entry { value, expires_at });
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<String> {
        self.tick();
        Quiet(self).get(key)
    }

    fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        self.tick();
        Quiet(self).set(key, value, ttl);
    }

    fn delete(&self, key: &str) {
        self.tick();
        Quiet(self).delete(key);
    }

    fn increment(&self, key: &str, delta: i64, ttl: Option<u64>) -> i64 {
        self.tick();
        Quiet(self).increment(key, delta, ttl)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> bool {
        self.tick();
        Quiet(self).compare_and_swap(key, expected, value, ttl)
    }

    /// One trip, as the host's batch is; the operations run one by one,
    /// which is atomic here (one caller at a time).
    fn batch(&self, ops: &[Op]) -> Vec<OpResult> {
        self.tick();
        Quiet(self).batch(ops)
    }
}

/// The store's operations without counting them (a batch's parts).
struct Quiet<'a>(&'a MemoryStore);

impl Store for Quiet<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.0.purge();
        self.0.entries.borrow().get(key).map(|e| e.value.clone())
    }

    fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        self.0.put(key, value.to_owned(), ttl);
    }

    fn delete(&self, key: &str) {
        self.0.entries.borrow_mut().remove(key);
    }

    fn increment(&self, key: &str, delta: i64, ttl: Option<u64>) -> i64 {
        self.0.purge();
        let mut entries = self.0.entries.borrow_mut();
        if let Some(entry) = entries.get_mut(key) {
            let new = entry.value.parse::<i64>().unwrap_or(0).wrapping_add(delta);
            entry.value = new.to_string();
            return new;
        }
        drop(entries);
        self.0.put(key, delta.to_string(), ttl);
        delta
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> bool {
        if self.get(key).as_deref() != expected {
            return false;
        }
        self.0.put(key, value.to_owned(), ttl);
        true
    }
}

/// The latency summary the host would report for successes that took
/// `latencies` (ms) over one second of host time.
pub fn latency_summary(latencies: &[u64]) -> LatencySummary {
    LatencySummary {
        count: u32::try_from(latencies.len()).unwrap_or(u32::MAX),
        sum: latencies.iter().sum(),
        sum_of_squares: latencies.iter().map(|l| l * l).sum(),
        span: 1_000,
    }
}

/// A failed attempt of `kind` with sensible defaults for everything else:
/// service `test`, operation `op`, idempotent, no status, no tags.
pub fn error_event(kind: ErrorKind, attempt: u32) -> ErrorEvent {
    ErrorEvent::new(kind, attempt)
        .with_service("test")
        .with_operation("op")
        .with_message(format!("{kind} failure"))
        .with_tags(Vec::new())
}

/// A call on service `test`, operation `op`, idempotent, no tags, no
/// deadline, with every string given (see [`error_event`]).
pub fn call_info(attempt: u32) -> CallInfo {
    CallInfo::new(attempt)
        .with_service("test")
        .with_operation("op")
        .with_tags(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_and_increment_keeps_its_first_ttl() {
        let store = MemoryStore::new();
        assert_eq!(store.increment("n", 2, Some(100)), 2);
        store.advance(60);
        assert_eq!(store.increment("n", 3, Some(100)), 5);
        store.advance(40);
        assert_eq!(store.get("n"), None);
        assert_eq!(store.increment("n", 1, None), 1);
        store.set("s", "x", None);
        assert_eq!(store.increment("s", 4, None), 4);
    }

    #[test]
    fn compare_and_swap_only_stores_over_the_expected_value() {
        let store = MemoryStore::new();
        assert!(store.compare_and_swap("k", None, "a", None));
        assert!(!store.compare_and_swap("k", None, "b", None));
        assert!(!store.compare_and_swap("k", Some("b"), "c", None));
        assert!(store.compare_and_swap("k", Some("a"), "c", Some(10)));
        assert_eq!(store.get_u64("k"), None);
        store.advance(10);
        assert_eq!(store.keys(), Vec::<String>::new());
    }
}
