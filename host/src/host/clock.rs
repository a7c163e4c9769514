//! The host clock: tokio's monotonic time, in milliseconds since the runtime
//! was built.
//!
//! Using tokio's clock (not `std::time`) makes it injectable: a test or the
//! demo runs on a paused tokio clock (`start_paused = true`) and every
//! sleep, timeout, deadline, plugin `clock.now` and state TTL advances in
//! virtual time, deterministically and without real waiting.

use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since `epoch`, saturating.
pub(crate) fn millis_since(epoch: Instant) -> u64 {
    duration_ms(Instant::now().saturating_duration_since(epoch))
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
