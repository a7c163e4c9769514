//! The sliding window for the failure ratio, as counters in host state.
//!
//! The window is cut into [`BUCKETS`] buckets of `window / BUCKETS` each.
//! Every bucket is two keys, `calls:<epoch>:<bucket>` and
//! `fails:<epoch>:<bucket>`, grown with the host's atomic `increment` and
//! created with a TTL that outlives the window, so old buckets vanish on
//! their own and concurrent instances never lose a count. `epoch` is when
//! the circuit last closed: a re-closed circuit starts from an empty window.

use mender_guest::state::Store;

/// How many buckets a window has: its edge is at most a tenth of the window
/// off, for 2 × 10 reads when a ratio is judged.
pub const BUCKETS: u64 = 10;

/// Calls and counted failures seen in the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls that ended in success or a counted failure.
    pub calls: u64,
    /// Counted failures.
    pub fails: u64,
}

/// A window of `BUCKETS` buckets.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    bucket_width: u64,
}

impl Window {
    /// A window `span` ms long (at least [`BUCKETS`] ms).
    pub fn new(span: u64) -> Window {
        Window {
            bucket_width: (span / BUCKETS).max(1),
        }
    }

    fn keys(epoch: u64, bucket: u64) -> (String, String) {
        (
            format!("calls:{epoch}:{bucket}"),
            format!("fails:{epoch}:{bucket}"),
        )
    }

    /// A bucket must outlive the window that starts at it, and a little
    /// more is harmless: reads only look at buckets inside the window.
    fn ttl(&self) -> u64 {
        self.bucket_width * (BUCKETS + 1)
    }

    /// Add `calls` and `fails` to the bucket of `now`.
    pub fn record(&self, store: &dyn Store, now: u64, epoch: u64, calls: u64, fails: u64) {
        let (calls_key, fails_key) = Window::keys(epoch, now / self.bucket_width);
        let ttl = Some(self.ttl());
        if calls > 0 {
            store.increment(&calls_key, saturating_i64(calls), ttl);
        }
        if fails > 0 {
            store.increment(&fails_key, saturating_i64(fails), ttl);
        }
    }

    /// What the window ending at `now` holds.
    pub fn totals(&self, store: &dyn Store, now: u64, epoch: u64) -> Totals {
        let current = now / self.bucket_width;
        let first = current.saturating_sub(BUCKETS - 1);
        let mut totals = Totals::default();
        for bucket in first..=current {
            let (calls_key, fails_key) = Window::keys(epoch, bucket);
            totals.calls += store.get_u64(&calls_key).unwrap_or(0);
            totals.fails += store.get_u64(&fails_key).unwrap_or(0);
        }
        totals
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::MemoryStore;

    #[test]
    fn sums_the_buckets_inside_the_window() {
        let store = MemoryStore::new();
        let window = Window::new(10_000);
        window.record(&store, store.now(), 0, 4, 1);
        store.advance(5_000);
        window.record(&store, store.now(), 0, 6, 3);
        assert_eq!(
            window.totals(&store, store.now(), 0),
            Totals {
                calls: 10,
                fails: 4
            }
        );
        // 10s after the first record its bucket has left the window.
        store.advance(5_000);
        assert_eq!(
            window.totals(&store, store.now(), 0),
            Totals { calls: 6, fails: 3 }
        );
        store.advance(5_000);
        assert_eq!(window.totals(&store, store.now(), 0), Totals::default());
    }

    #[test]
    fn expired_buckets_leave_no_keys_behind() {
        let store = MemoryStore::new();
        let window = Window::new(10_000);
        window.record(&store, 0, 0, 1, 1);
        store.advance(window.ttl());
        assert!(store.keys().is_empty());
    }

    #[test]
    fn each_epoch_has_its_own_window() {
        let store = MemoryStore::new();
        let window = Window::new(10_000);
        window.record(&store, 0, 0, 5, 5);
        assert_eq!(window.totals(&store, 0, 7), Totals::default());
    }
}
