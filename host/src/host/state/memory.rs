//! The in-memory state backend: one process, sharded locks.

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use super::{ScopedKey, StateStore};

/// Number of independently locked shards. Operations on one key are atomic
/// because they hold its shard's lock; 16 shards keep two cores' worth of
/// concurrent plugins from queueing on one lock.
const SHARDS: usize = 16;

/// Expired entries are swept from a shard once it holds this many entries
/// more than after its last sweep, so memory stays bounded by live keys
/// without a background task.
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

#[derive(Default)]
struct Shard {
    map: HashMap<ScopedKey, Value>,
    len_after_sweep: usize,
}

impl Shard {
    fn maybe_sweep(&mut self, now_ms: u64) {
        if self.map.len() >= self.len_after_sweep + SWEEP_GROWTH {
            self.map.retain(|_, v| v.live(now_ms));
            self.len_after_sweep = self.map.len();
        }
    }

    fn live(&self, key: &ScopedKey, now_ms: u64) -> Option<&Value> {
        self.map.get(key).filter(|v| v.live(now_ms))
    }
}

/// State kept in this process's memory. The default backend.
pub struct MemoryState {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl MemoryState {
    fn shard(&self, key: &ScopedKey) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        // A panic while holding a shard cannot leave a half-written entry
        // (every mutation is a single map operation), so poison is ignored.
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn expiry(ttl_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    ttl_ms.map(|ttl| now_ms.saturating_add(ttl))
}

impl StateStore for MemoryState {
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String> {
        self.shard(key).live(key, now_ms).map(|v| v.text.clone())
    }

    fn set(&self, key: ScopedKey, value: String, ttl_ms: Option<u64>, now_ms: u64) {
        let mut shard = self.shard(&key);
        shard.maybe_sweep(now_ms);
        shard.map.insert(
            key,
            Value {
                text: value,
                expires_at: expiry(ttl_ms, now_ms),
            },
        );
    }

    fn delete(&self, key: &ScopedKey) {
        self.shard(key).map.remove(key);
    }

    fn increment(&self, key: ScopedKey, delta: i64, ttl_ms: Option<u64>, now_ms: u64) -> i64 {
        let mut shard = self.shard(&key);
        shard.maybe_sweep(now_ms);
        match shard.map.entry(key) {
            Entry::Occupied(mut e) if e.get().live(now_ms) => {
                let v = e.get_mut();
                let next = v.text.parse::<i64>().unwrap_or(0).saturating_add(delta);
                v.text = next.to_string();
                next
            }
            Entry::Occupied(mut e) => {
                e.insert(Value {
                    text: delta.to_string(),
                    expires_at: expiry(ttl_ms, now_ms),
                });
                delta
            }
            Entry::Vacant(e) => {
                e.insert(Value {
                    text: delta.to_string(),
                    expires_at: expiry(ttl_ms, now_ms),
                });
                delta
            }
        }
    }

    fn compare_and_swap(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> bool {
        let mut shard = self.shard(&key);
        let current = shard.live(&key, now_ms).map(|v| v.text.as_str());
        if current != expected {
            return false;
        }
        shard.maybe_sweep(now_ms);
        shard.map.insert(
            key,
            Value {
                text: value,
                expires_at: expiry(ttl_ms, now_ms),
            },
        );
        true
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
    fn scopes_do_not_see_each_other() {
        let s = MemoryState::default();
        let mut other = key("k");
        other.service = "t".into();
        s.set(key("k"), "1".into(), None, 0);
        assert_eq!(s.get(&other, 0), None);
    }
}
