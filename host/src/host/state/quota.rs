//! The state quota: how much one plugin may keep for one service.
//!
//! The per-call budgets (256 writes, 64 KiB values, 256-byte keys) bound
//! one hook call, not what accumulates: a strategy writing 255 new 64 KiB
//! keys on every failing call would grow the host (or Redis) by 16 MiB a
//! call without end. The quota bounds the total per (plugin, service):
//! a write that would take the scope past it is refused, after expired keys
//! are evicted, and the plugin faults with a [`QuotaExceeded`] naming the
//! plugin, the service and the quota. Writes that do not grow the scope
//! (overwriting with a value no longer, deleting) are always allowed, so a
//! plugin over a lowered quota can still clean up.

use std::fmt;

pub use crate::config::StateQuota;

/// A write refused because it would take its (plugin, service) scope past
/// the quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The plugin that wrote.
    pub plugin: String,
    /// The service it wrote for.
    pub service: String,
    /// Its quota.
    pub quota: StateQuota,
    /// Bytes the scope would have held after the write.
    pub bytes: u64,
    /// Keys the scope would have held after the write.
    pub keys: u64,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}` exceeded its state quota for service `{}` ({} bytes, {} keys; \
             `state-kib` / `state-keys` in [limits]): the write would make {} bytes in {} keys \
             (expired keys evicted)",
            self.plugin,
            self.service,
            self.quota.max_bytes,
            self.quota.max_keys,
            self.bytes,
            self.keys
        )
    }
}

impl std::error::Error for QuotaExceeded {}
