//! The host clock: tokio's monotonic time, in milliseconds since the runtime
//! was built.
//!
//! Using tokio's clock (not `std::time`) makes it injectable: a test or the
//! demo runs on a paused tokio clock (`start_paused = true`) and every
//! sleep, timeout, deadline, plugin `clock.now` and state TTL advances in
//! virtual time, deterministically and without real waiting.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A process-wide clock of whole seconds, published by a thread, so that
/// what counts per second (the live view's window) reads an atomic instead
/// of the clock on every call: a clock read is about a tenth of a
/// successful call's whole cost in the host.
struct Coarse {
    epoch: std::time::Instant,
    seconds: AtomicU64,
    /// False when the publishing thread could not be started: then every
    /// read asks the clock itself.
    published: bool,
}

/// How often the coarse clock is published: a second boundary is seen at
/// most this late.
const COARSE_TICK: Duration = Duration::from_millis(100);

static COARSE: OnceLock<Coarse> = OnceLock::new();

/// Whole seconds on the real (never paused) monotonic clock since this
/// process first asked, at most [`COARSE_TICK`] behind.
pub(crate) fn coarse_seconds() -> u64 {
    let coarse = COARSE.get_or_init(|| {
        let published = std::thread::Builder::new()
            .name("mender-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(COARSE_TICK);
                    if let Some(c) = COARSE.get() {
                        c.seconds
                            .store(c.epoch.elapsed().as_secs(), Ordering::Relaxed);
                    }
                }
            })
            .is_ok();
        Coarse {
            epoch: std::time::Instant::now(),
            seconds: AtomicU64::new(0),
            published,
        }
    });
    if coarse.published {
        coarse.seconds.load(Ordering::Relaxed)
    } else {
        coarse.epoch.elapsed().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_follows_the_real_one() {
        let first = coarse_seconds();
        let real = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        let later = coarse_seconds();
        // At least one whole second passed; at most one tick late.
        assert!(later > first, "{first} → {later}");
        assert!(later - first <= real.elapsed().as_secs() + 1);
    }
}
