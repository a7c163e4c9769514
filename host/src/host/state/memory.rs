//! The in-memory state backend: one process, sharded locks.
//!
//! Entries are grouped by their (plugin, service) scope, and a scope lives
//! in one shard, so the scope's size is known under the same lock that
//! writes it: the quota (see [`super::quota`]) is checked and the write
//! made in one step.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::{BatchOp, BatchResult, QuotaExceeded, ScopedKey, StateQuota, StateScope, StateStore};

/// Number of independently locked shards. Operations on one scope are
/// atomic because they hold its shard's lock; 16 shards keep two cores'
/// worth of concurrent plugins from queueing on one lock.
const SHARDS: usize = 16;

/// Expired entries are swept from a scope once it holds this many entries
/// more than after its last sweep (and whenever a write would break the
/// quota), so memory stays bounded by live keys without a background task.
const SWEEP_GROWTH: usize = 1024;

struct Value {
    text: String,
    /// Host-clock millisecond at which the entry expires.
    expires_at: Option<u64>,
}

impl Value {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at.is_none_or(|at| now_ms < at)
    }
}

/// What a stored entry costs against the quota.
fn size(key: &str, value: &str) -> u64 {
    (key.len() + value.len()) as u64
}

/// The maps' hasher: a plugin's every state operation hashes its key, its
/// plugin and its service, and std's SipHash was a few percent of a
/// failed call through three plugins. foldhash is randomly seeded, and a
/// scope's size is bounded by its quota.
type Hashed = foldhash::fast::RandomState;

/// One (plugin, service) scope's entries and their total size.
#[derive(Default)]
struct Scope {
    map: HashMap<String, Value, Hashed>,
    /// Sum of [`size`] over `map`, expired entries included until swept.
    bytes: u64,
    len_after_sweep: usize,
}

impl Scope {
    fn sweep(&mut self, now_ms: u64) {
        let bytes = &mut self.bytes;
        self.map.retain(|k, v| {
            let live = v.live(now_ms);
            if !live {
                *bytes -= size(k, &v.text);
            }
            live
        });
        self.len_after_sweep = self.map.len();
    }

    fn maybe_sweep(&mut self, now_ms: u64) {
        if self.map.len() >= self.len_after_sweep + SWEEP_GROWTH {
            self.sweep(now_ms);
        }
    }

    fn live(&self, key: &str, now_ms: u64) -> Option<&Value> {
        self.map.get(key).filter(|v| v.live(now_ms))
    }

    /// Stores `value` at `key` if the quota allows (evicting expired
    /// entries first when it would not).
    fn put(
        &mut self,
        key: &ScopedKey,
        value: Value,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded> {
        self.maybe_sweep(now_ms);
        let check = |scope: &Scope| {
            let old = scope.map.get(&key.key).map(|v| size(&key.key, &v.text));
            let new = size(&key.key, &value.text);
            let bytes = scope.bytes - old.unwrap_or(0) + new;
            let keys = scope.map.len() as u64 + u64::from(old.is_none());
            let refused = quota.refuses(bytes, keys, new > old.unwrap_or(0), old.is_none());
            (refused, bytes, keys)
        };
        let (mut refused, mut bytes, mut keys) = check(self);
        if refused {
            self.sweep(now_ms);
            (refused, bytes, keys) = check(self);
        }
        if refused {
            return Err(QuotaExceeded {
                plugin: key.plugin.to_string(),
                service: key.service.to_string(),
                quota,
                bytes,
                keys,
            });
        }
        let added = size(&key.key, &value.text);
        if let Some(old) = self.map.insert(key.key.clone(), value) {
            self.bytes -= size(&key.key, &old.text);
        }
        self.bytes += added;
        Ok(())
    }

    fn increment(
        &mut self,
        key: &ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded> {
        let value = match self.live(&key.key, now_ms) {
            Some(v) => {
                let next = v.text.parse::<i64>().unwrap_or(0).saturating_add(delta);
                Value {
                    text: next.to_string(),
                    expires_at: v.expires_at,
                }
            }
            None => Value {
                text: delta.to_string(),
                expires_at: expiry(ttl_ms, now_ms),
            },
        };
        let n = value.text.parse().unwrap_or(delta);
        self.put(key, value, now_ms, quota)?;
        Ok(n)
    }

    fn compare_and_swap(
        &mut self,
        key: &ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Swap, QuotaExceeded> {
        let current = self.live(&key.key, now_ms).map(|v| v.text.as_str());
        if current != expected {
            return Ok(Swap::Found(current.map(str::to_string)));
        }
        let value = Value {
            text: value,
            expires_at: expiry(ttl_ms, now_ms),
        };
        self.put(key, value, now_ms, quota)?;
        Ok(Swap::Stored)
    }

    /// Runs a batch in this scope (see [`StateStore::batch_within`]).
    fn batch(
        &mut self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded> {
        let mut results = Vec::with_capacity(ops.len());
        let mut held = true;
        for op in ops {
            if !held {
                results.push(BatchResult::Skipped);
                continue;
            }
            // Reads look up the plugin's key as it is; only writes need the
            // scoped key (the quota's error names the scope).
            let key = || scope.key(op.key());
            let result = match op {
                BatchOp::Get { key } => {
                    BatchResult::Value(self.live(key, now_ms).map(|v| v.text.clone()))
                }
                BatchOp::Set { value, ttl_ms, .. } => {
                    let value = Value {
                        text: value.clone(),
                        expires_at: expiry(*ttl_ms, now_ms),
                    };
                    self.put(&key(), value, now_ms, quota)?;
                    BatchResult::Done
                }
                BatchOp::Delete { key } => {
                    self.remove(key);
                    BatchResult::Done
                }
                BatchOp::Increment { delta, ttl_ms, .. } => {
                    BatchResult::Number(self.increment(&key(), *delta, *ttl_ms, now_ms, quota)?)
                }
                BatchOp::CompareAndSwap {
                    expected,
                    value,
                    ttl_ms,
                    ..
                } => {
                    let expected = expected.as_deref();
                    match self.compare_and_swap(
                        &key(),
                        expected,
                        value.clone(),
                        *ttl_ms,
                        now_ms,
                        quota,
                    )? {
                        Swap::Stored => BatchResult::Done,
                        Swap::Found(found) => BatchResult::Value(found),
                    }
                }
                BatchOp::Expect { key, value } => {
                    let found = self.live(key, now_ms).map(|v| &v.text);
                    if found == value.as_ref() {
                        BatchResult::Done
                    } else {
                        held = false;
                        BatchResult::Value(found.cloned())
                    }
                }
            };
            results.push(result);
        }
        Ok(results)
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= size(key, &old.text);
        }
    }
}

/// What a compare-and-swap did.
enum Swap {
    Stored,
    /// It did not store: the key held this instead.
    Found(Option<String>),
}

/// A shard: scopes by plugin, then service.
#[derive(Default)]
struct Shard {
    scopes: HashMap<Arc<str>, HashMap<Arc<str>, Scope, Hashed>, Hashed>,
}

impl Shard {
    fn scope(&self, key: &ScopedKey) -> Option<&Scope> {
        self.scopes.get(&key.plugin)?.get(&key.service)
    }

    fn scope_mut(&mut self, key: &ScopedKey) -> &mut Scope {
        // Looked up before any entry is made: `entry` takes its key by
        // value, a reference count up and down on every write.
        if !self.scopes.contains_key(&key.plugin) {
            self.scopes.insert(key.plugin.clone(), HashMap::default());
        }
        let services = self.scopes.get_mut(&key.plugin).expect("inserted above");
        if !services.contains_key(&key.service) {
            services.insert(key.service.clone(), Scope::default());
        }
        services.get_mut(&key.service).expect("inserted above")
    }
}

/// State kept in this process's memory. The default backend.
pub struct MemoryState {
    shards: Vec<Mutex<Shard>>,
    /// Picks a scope's shard.
    hasher: Hashed,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Hashed::default(),
        }
    }
}

impl MemoryState {
    fn shard(&self, key: &ScopedKey) -> std::sync::MutexGuard<'_, Shard> {
        let h = self.hasher.hash_one((&*key.plugin, &*key.service));
        let shard = &self.shards[(h as usize) % SHARDS];
        // A panic while holding a shard cannot leave a half-written entry
        // (every mutation completes its size accounting before anything
        // can panic), so poison is ignored.
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn expiry(ttl_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    ttl_ms.map(|ttl| now_ms.saturating_add(ttl))
}

impl StateStore for MemoryState {
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String> {
        let shard = self.shard(key);
        let value = shard.scope(key)?.live(&key.key, now_ms)?;
        Some(value.text.clone())
    }

    fn set_within(
        &self,
        key: ScopedKey,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded> {
        let mut shard = self.shard(&key);
        let value = Value {
            text: value,
            expires_at: expiry(ttl_ms, now_ms),
        };
        shard.scope_mut(&key).put(&key, value, now_ms, quota)
    }

    fn delete(&self, key: &ScopedKey) {
        let mut shard = self.shard(key);
        let Some(services) = shard.scopes.get_mut(&key.plugin) else {
            return;
        };
        if let Entry::Occupied(mut scope) = services.entry(key.service.clone()) {
            scope.get_mut().remove(&key.key);
            if scope.get().map.is_empty() {
                scope.remove();
            }
        }
    }

    fn increment_within(
        &self,
        key: ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded> {
        let mut shard = self.shard(&key);
        shard
            .scope_mut(&key)
            .increment(&key, delta, ttl_ms, now_ms, quota)
    }

    fn compare_and_swap_within(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<bool, QuotaExceeded> {
        let mut shard = self.shard(&key);
        let scope = shard.scope_mut(&key);
        let swap = scope.compare_and_swap(&key, expected, value, ttl_ms, now_ms, quota)?;
        Ok(matches!(swap, Swap::Stored))
    }

    fn batch_within(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded> {
        // One lock for the whole batch: the scope lives in one shard, so
        // nothing else touches it until the batch is done.
        let probe = scope.key("");
        let mut shard = self.shard(&probe);
        let results = shard.scope_mut(&probe).batch(scope, ops, now_ms, quota);
        // A batch of reads on a scope that holds nothing leaves nothing.
        if let Some(services) = shard.scopes.get_mut(&scope.plugin)
            && services
                .get(&scope.service)
                .is_some_and(|s| s.map.is_empty())
        {
            services.remove(&scope.service);
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> ScopedKey {
        ScopedKey {
            plugin: "p".into(),
            service: "s".into(),
            key: k.into(),
        }
    }

    #[test]
    fn ttl_expires_and_increment_restarts() {
        let s = MemoryState::default();
        assert_eq!(s.increment(key("n"), 2, Some(100), 0), 2);
        assert_eq!(s.increment(key("n"), 3, Some(100), 50), 5);
        // The TTL set at creation still holds: the counter expires at 100.
        assert_eq!(s.get(&key("n"), 99).as_deref(), Some("5"));
        assert_eq!(s.get(&key("n"), 100), None);
        assert_eq!(s.increment(key("n"), 1, None, 150), 1);
    }

    #[test]
    fn non_integer_counts_as_zero() {
        let s = MemoryState::default();
        s.set(key("x"), "open".into(), None, 0);
        assert_eq!(s.increment(key("x"), 4, None, 0), 4);
    }

    #[test]
    fn compare_and_swap_takes_once() {
        let s = MemoryState::default();
        assert!(s.compare_and_swap(key("probe"), None, "taken".into(), None, 0));
        assert!(!s.compare_and_swap(key("probe"), None, "taken".into(), None, 0));
        assert!(s.compare_and_swap(key("probe"), Some("taken"), "free".into(), None, 0));
    }

    #[test]
    fn the_quota_bounds_a_scope_and_expired_keys_make_room() {
        let s = MemoryState::default();
        let quota = StateQuota {
            max_bytes: 100,
            max_keys: 3,
        };
        // 3 keys of 1 + 20 bytes: 63 bytes.
        for k in ["a", "b", "c"] {
            s.set_within(key(k), "v".repeat(20), Some(10), 0, quota)
                .unwrap();
        }
        let e = s
            .set_within(key("d"), "v".into(), None, 5, quota)
            .unwrap_err();
        assert_eq!(
            (e.keys, e.plugin.as_str(), e.service.as_str()),
            (4, "p", "s")
        );
        assert!(
            e.to_string()
                .contains("plugin `p` exceeded its state quota for service `s`"),
            "{e}"
        );
        // Overwriting and deleting never break it; growing a value does.
        s.set_within(key("a"), "v".into(), Some(5), 5, quota)
            .unwrap();
        let e = s
            .set_within(key("b"), "v".repeat(90), None, 5, quota)
            .unwrap_err();
        assert!(e.bytes > 100, "{e}");
        assert!(s.increment_within(key("n"), 1, None, 5, quota).is_err());
        assert!(
            s.compare_and_swap_within(key("n"), None, "x".into(), None, 5, quota)
                .is_err()
        );
        // Once the keys expire, they are evicted to make room.
        for k in ["d", "e", "f"] {
            s.set_within(key(k), "v".repeat(30), None, 10, quota)
                .unwrap();
        }
        assert_eq!(s.get(&key("a"), 10), None);
        // Other scopes have their own quota.
        let mut other = key("d");
        other.service = "t".into();
        s.set_within(other, "v".into(), None, 10, quota).unwrap();
        // Without a quota, nothing is refused.
        s.set(key("g"), "v".repeat(200), None, 10);
        assert_eq!(s.get(&key("g"), 10).map(|v| v.len()), Some(200));
    }

    #[test]
    fn scopes_do_not_see_each_other() {
        let s = MemoryState::default();
        let mut other = key("k");
        other.service = "t".into();
        s.set(key("k"), "1".into(), None, 0);
        assert_eq!(s.get(&other, 0), None);
    }
}
