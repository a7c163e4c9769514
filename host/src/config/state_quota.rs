//! The state quota as configured (`state-kib`, `state-keys`): how much one
//! plugin may keep for one service. Enforced by the stores
//! (`host/state/quota.rs`).

/// The most a (plugin, service) scope may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateQuota {
    /// Bytes of keys plus values.
    pub max_bytes: u64,
    /// Live keys.
    pub max_keys: u64,
}

impl StateQuota {
    /// No bound: the host's own state (the retry budget's counters, a few
    /// keys per service) and embedders' direct use of a store.
    pub const UNLIMITED: StateQuota = StateQuota {
        max_bytes: u64::MAX,
        max_keys: u64::MAX,
    };

    /// The largest `state-kib` accepted: 1 GiB per (plugin, service) is
    /// already more than any strategy's counters and records need.
    pub const MAX_KIB: u64 = 1 << 20;
    /// The largest `state-keys` accepted.
    pub const MAX_KEYS: u64 = 1_000_000;

    /// Whether a scope at `bytes` and `keys` after a write that changed
    /// its size by `grew` bytes and created a key if `new_key` breaks the
    /// quota. Writes that do not grow it never do.
    pub(crate) fn refuses(&self, bytes: u64, keys: u64, grew: bool, new_key: bool) -> bool {
        (grew && bytes > self.max_bytes) || (new_key && keys > self.max_keys)
    }
}

impl Default for StateQuota {
    fn default() -> Self {
        StateQuota {
            // A breaker keeps a few dozen small keys per service (its
            // circuit, streak and window buckets), a limiter one: 1 MiB is
            // a hundred-fold headroom, yet 100 plugin-service pairs at
            // their quota hold 100 MiB at most.
            max_bytes: 1 << 20,
            // Counters are small: a scope at its byte quota in 1 KiB keys
            // has 1024 of them. More keys than that is a key per call, not
            // state.
            max_keys: 1024,
        }
    }
}
