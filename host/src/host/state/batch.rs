//! `state.batch`: several operations on one (plugin, service) scope, run in
//! order with no other operation on that scope in between, in one trip to
//! the backend.
//!
//! Why: a breaker or a limiter reads, decides and writes. With one call
//! per operation, that is two or more Redis round trips per decision, and
//! a compare-and-swap loop to stay correct between them. A batch carries
//! the reads and writes together, and an [`BatchOp::Expect`] at its head
//! makes it an optimistic transaction: "if the circuit is still what I last
//! saw, count this and tell me the window", one round trip when the guess
//! holds, and the value found when it does not.
//!
//! A batch is isolated, not all-or-nothing: a write refused by the quota
//! ends the batch there, and the writes before it stay (Redis scripts
//! cannot roll back; the memory backend does the same so both behave
//! alike). The refusal faults the plugin, as a single refused write does.

use std::sync::Arc;

use super::ScopedKey;

/// Most operations in one batch: a breaker's decision needs about two
/// dozen (its window's buckets); more would hold the scope's lock, or a
/// Redis script, for longer than any decision should take.
pub const MAX_BATCH_OPS: usize = 64;

/// The scope a batch runs in: every key of its operations is this
/// plugin's, for this service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateScope {
    /// The plugin's name in `mender.toml`.
    pub plugin: Arc<str>,
    /// The service the plugin was called for.
    pub service: Arc<str>,
}

impl StateScope {
    /// `key` in this scope.
    pub fn key(&self, key: &str) -> ScopedKey {
        ScopedKey {
            plugin: self.plugin.clone(),
            service: self.service.clone(),
            key: key.to_string(),
        }
    }
}

/// One operation of a batch, on a key of the batch's scope. TTLs are in
/// host milliseconds, as for the single operations. The fields mean what
/// they mean for the single operations of [`StateStore`](super::StateStore).
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Read a key.
    Get { key: String },
    /// Store a value.
    Set {
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    },
    /// Remove a key.
    Delete { key: String },
    /// Add to the integer at a key; the TTL applies when this creates it.
    Increment {
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    },
    /// Store a value only if the key holds `expected` (`None`: absent).
    CompareAndSwap {
        key: String,
        expected: Option<String>,
        value: String,
        ttl_ms: Option<u64>,
    },
    /// Go on only if the key holds `value` (`None`: absent); otherwise
    /// every later operation is skipped.
    Expect { key: String, value: Option<String> },
}

impl BatchOp {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            BatchOp::Get { key }
            | BatchOp::Set { key, .. }
            | BatchOp::Delete { key }
            | BatchOp::Increment { key, .. }
            | BatchOp::CompareAndSwap { key, .. }
            | BatchOp::Expect { key, .. } => key,
        }
    }

    /// The value it would write, if it writes one (what the per-call write
    /// budget and the value size limit count).
    pub fn written(&self) -> Option<&str> {
        match self {
            BatchOp::Set { value, .. } | BatchOp::CompareAndSwap { value, .. } => Some(value),
            BatchOp::Delete { .. } | BatchOp::Increment { .. } => Some(""),
            BatchOp::Get { .. } | BatchOp::Expect { .. } => None,
        }
    }
}

/// What one operation of a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// A `Get`'s value; for a `CompareAndSwap` that did not store or an
    /// `Expect` that did not hold, the value found instead.
    Value(Option<String>),
    /// An `Increment`'s new value.
    Number(i64),
    /// A `Set` or `Delete` done, a `CompareAndSwap` that stored, an
    /// `Expect` that held.
    Done,
    /// Not run: an `Expect` before it did not hold.
    Skipped,
}
