//! The host's key/value store: the only memory that outlives an instance.
//!
//! The host scopes every key to (plugin, service) and makes each operation
//! on one key atomic. Times (`ttl`) are milliseconds on the host clock.
//!
//! The free functions call the host. Logic that should be unit-tested
//! natively can take a [`Store`] instead and be handed [`HostStore`] in the
//! plugin and [`MemoryStore`](crate::testing::MemoryStore) in tests.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::bindings::host::state;
pub use crate::bindings::host::state::{ExpectOp, IncrementOp, Op, OpResult, SetOp, SwapOp};

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

/// Runs `ops` in order with no other state operation on this plugin's keys
/// for this service in between, in one round trip to a shared store; one
/// result per operation. An [`Op::expect`] that does not hold skips the
/// rest (see the WIT's `state.batch`). At most 64 operations.
pub fn batch(ops: &[Op]) -> Vec<OpResult> {
    state::batch(ops)
}

impl Op {
    /// Read `key`.
    pub fn get(key: &str) -> Op {
        Op::Get(key.to_string())
    }

    /// Store `value` at `key`.
    pub fn set(key: &str, value: &str, ttl: Option<u64>) -> Op {
        Op::Set(SetOp {
            key: key.to_string(),
            value: value.to_string(),
            ttl,
        })
    }

    /// Remove `key`.
    pub fn delete(key: &str) -> Op {
        Op::Delete(key.to_string())
    }

    /// Add `delta` to the integer at `key`.
    pub fn increment(key: &str, delta: i64, ttl: Option<u64>) -> Op {
        Op::Increment(IncrementOp {
            key: key.to_string(),
            delta,
            ttl,
        })
    }

    /// Store `value` at `key` if it holds `expected` (`None`: absent).
    pub fn compare_and_swap(
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> Op {
        Op::CompareAndSwap(SwapOp {
            key: key.to_string(),
            expected: expected.map(str::to_string),
            value: value.to_string(),
            ttl,
        })
    }

    /// Go on only if `key` holds `value` (`None`: absent).
    pub fn expect(key: &str, value: Option<&str>) -> Op {
        Op::Expect(ExpectOp {
            key: key.to_string(),
            value: value.map(str::to_string),
        })
    }
}

impl OpResult {
    /// A `get`'s value, or what a failed `compare-and-swap` or `expect`
    /// found; `None` for any other result.
    pub fn found(&self) -> Option<Option<&str>> {
        match self {
            OpResult::Value(v) => Some(v.as_deref()),
            _ => None,
        }
    }

    /// An `increment`'s new value.
    pub fn number(&self) -> Option<i64> {
        match self {
            OpResult::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether the operation was done: a write, a `compare-and-swap` that
    /// stored, an `expect` that held.
    pub fn is_done(&self) -> bool {
        matches!(self, OpResult::Done)
    }
}

/// What a plugin instance last read or wrote at one of its keys, per
/// service: the guess a batch's `expect` or `compare-and-swap` starts from,
/// so a decision needs no separate read. A stale guess costs one more
/// round trip (the failed operation answers with the value found), never a
/// wrong answer.
#[derive(Debug, Default)]
pub struct LastSeen(RefCell<HashMap<String, Option<String>>>);

impl LastSeen {
    /// The value last seen for `service` (`None`: absent, or never seen).
    pub fn get(&self, service: &str) -> Option<String> {
        self.0.borrow().get(service).cloned().flatten()
    }

    /// Remember `value` (`None`: absent) for `service`.
    pub fn set(&self, service: &str, value: Option<String>) {
        let mut seen = self.0.borrow_mut();
        match seen.get_mut(service) {
            Some(slot) => *slot = value,
            None => {
                seen.insert(service.to_owned(), value);
            }
        }
    }

    /// Forget what was seen for `service`.
    pub fn forget(&self, service: &str) {
        self.0.borrow_mut().remove(service);
    }
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

    /// Runs `ops` in order, as [`batch`] does. The host's store runs them
    /// in one atomic trip; this default runs them one by one, which is the
    /// same for a store only one caller uses at a time (a test's).
    fn batch(&self, ops: &[Op]) -> Vec<OpResult> {
        let mut held = true;
        ops.iter()
            .map(|op| {
                if !held {
                    return OpResult::Skipped;
                }
                match op {
                    Op::Get(key) => OpResult::Value(self.get(key)),
                    Op::Set(o) => {
                        self.set(&o.key, &o.value, o.ttl);
                        OpResult::Done
                    }
                    Op::Delete(key) => {
                        self.delete(key);
                        OpResult::Done
                    }
                    Op::Increment(o) => OpResult::Number(self.increment(&o.key, o.delta, o.ttl)),
                    Op::CompareAndSwap(o) => {
                        let expected = o.expected.as_deref();
                        if self.compare_and_swap(&o.key, expected, &o.value, o.ttl) {
                            OpResult::Done
                        } else {
                            OpResult::Value(self.get(&o.key))
                        }
                    }
                    Op::Expect(o) => {
                        let found = self.get(&o.key);
                        if found == o.value {
                            OpResult::Done
                        } else {
                            held = false;
                            OpResult::Value(found)
                        }
                    }
                }
            })
            .collect()
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

    fn batch(&self, ops: &[Op]) -> Vec<OpResult> {
        batch(ops)
    }
}
