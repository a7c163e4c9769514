//! The host's monotonic clock, the only clock a plugin may use: the host may
//! run it virtually (tests, `mender demo`), so `std::time` would disagree.

/// Milliseconds since the host's clock started. Never goes backwards.
pub fn now() -> u64 {
    crate::bindings::host::clock::now()
}
