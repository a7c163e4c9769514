//! The sliding window for the failure ratio, as counters in host state.
//!
//! The window is cut into [`BUCKETS`] buckets of `window / BUCKETS` each.
//! Every bucket is two keys, `calls:<epoch>:<bucket>` and
//! `fails:<epoch>:<bucket>`, grown with the host's atomic `increment` and
//! created with a TTL that outlives the window, so old buckets vanish on
//! their own and concurrent instances never lose a count. `epoch` is when
//! the circuit last closed: a re-closed circuit starts from an empty window.

use mender_guest::state::{Op, OpResult};

use crate::ops::{Ops, count, delta};

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

    /// Adds `calls` and `fails` to the bucket of `now`.
    pub fn record(&self, ops: &mut Ops, now: u64, epoch: u64, calls: u64, fails: u64) {
        let (calls_key, fails_key) = Window::keys(epoch, now / self.bucket_width);
        let ttl = Some(self.ttl());
        if calls > 0 {
            ops.push(Op::increment(&calls_key, delta(calls), ttl));
        }
        if fails > 0 {
            ops.push(Op::increment(&fails_key, delta(fails), ttl));
        }
    }

    /// Reads what the window ending at `now` holds (after what `ops` wrote
    /// before): [`Reads::totals`] sums the results.
    pub fn read(&self, ops: &mut Ops, now: u64, epoch: u64) -> Reads {
        let current = now / self.bucket_width;
        let first = current.saturating_sub(BUCKETS - 1);
        let at = ops.next_at();
        for bucket in first..=current {
            let (calls_key, fails_key) = Window::keys(epoch, bucket);
            ops.push(Op::get(&calls_key));
            ops.push(Op::get(&fails_key));
        }
        Reads {
            at,
            buckets: (current - first + 1) as usize,
        }
    }
}

/// Where a window's reads are in a batch's results.
#[derive(Clone, Copy, Debug)]
pub struct Reads {
    at: usize,
    buckets: usize,
}

impl Reads {
    /// The window's totals, from the batch's results.
    pub fn totals(self, results: &[OpResult]) -> Totals {
        let mut totals = Totals::default();
        for b in 0..self.buckets {
            totals.calls += count(results, self.at + 2 * b);
            totals.fails += count(results, self.at + 2 * b + 1);
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::MemoryStore;

    impl Window {
        fn record_in(&self, store: &MemoryStore, now: u64, epoch: u64, calls: u64, fails: u64) {
            let mut ops = Ops::default();
            self.record(&mut ops, now, epoch, calls, fails);
            ops.run(store);
        }

        fn totals(&self, store: &MemoryStore, now: u64, epoch: u64) -> Totals {
            let mut ops = Ops::default();
            let reads = self.read(&mut ops, now, epoch);
            reads.totals(&ops.run(store))
        }
    }

    #[test]
    fn sums_the_buckets_inside_the_window() {
        let store = MemoryStore::new();
        let window = Window::new(10_000);
        window.record_in(&store, store.now(), 0, 4, 1);
        store.advance(5_000);
        window.record_in(&store, store.now(), 0, 6, 3);
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
        window.record_in(&store, 0, 0, 1, 1);
        store.advance(window.ttl());
        assert!(store.keys().is_empty());
    }

    #[test]
    fn each_epoch_has_its_own_window() {
        let store = MemoryStore::new();
        let window = Window::new(10_000);
        window.record_in(&store, 0, 0, 5, 5);
        assert_eq!(window.totals(&store, 0, 7), Totals::default());
    }
}
