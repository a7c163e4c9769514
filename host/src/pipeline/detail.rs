//! What contract 0.2 adds to a report of outcomes, counted natively beside
//! the service's [`ServiceStats`](super::outcomes::ServiceStats): the
//! successes' latencies as count, sum and sum of squares (so a plugin gets
//! mean and variance), failures in a row per kind, and the span of host
//! time a report covers.
//!
//! A 0.2 plugin reads it on demand (`current.latency()`,
//! `current.consecutive-failures-by-kind()`). Nothing is counted until a
//! pipeline of the service has a plugin that can read it ([`enable`]), so
//! a service of 0.1 plugins pays one relaxed load per attempt; the host
//! takes a report only for such plugins. Kept out of `outcomes.rs` so the
//! hot counters there stay as they were: recording here, once enabled, is
//! three relaxed adds per success, one per failure.
//!
//! [`enable`]: DetailStats::enable

use std::sync::Mutex;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use crate::failure::ErrorKind;
use crate::plugin::current::{LatencySummary, RecentDetail};

/// Running totals of one service's latencies and failure streaks.
#[derive(Default)]
pub(crate) struct DetailStats {
    /// Whether anything reads these counts (see the module doc).
    enabled: AtomicBool,
    successes: AtomicU64,
    latency_ms: AtomicU64,
    latency_sq: AtomicU64,
    streak_by_kind: [AtomicU32; ErrorKind::ALL.len()],
    /// Whether any streak is non-zero: a success then clears them, and
    /// only then (the happy path reads one flag, writes nothing).
    in_streak: AtomicBool,
    /// Attempts between admission and outcome (`in_flight.rs`).
    in_flight: AtomicU32,
}

impl DetailStats {
    /// Starts counting: a plugin that reads the detail serves the service.
    /// Never turned off (a reload back to 0.1 plugins leaves it on).
    pub(crate) fn enable(&self) {
        if !self.enabled.load(Relaxed) {
            self.enabled.store(true, Relaxed);
        }
    }

    /// Whether anything reads these counts.
    #[inline]
    pub(crate) fn counts(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// An attempt starts its admission (`in_flight.rs`'s `Ticket`).
    pub(crate) fn enter(&self) {
        self.in_flight.fetch_add(1, AcqRel);
    }

    /// An attempt has its outcome.
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, AcqRel);
    }

    /// Attempts between admission and outcome now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Acquire)
    }

    /// Sets the count outright: the conformance kit's `in-flight` step.
    #[cfg(feature = "conformance")]
    pub(crate) fn set_in_flight(&self, n: u32) {
        self.in_flight
            .store(n, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn record_success(&self, latency_ms: u64) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        self.successes.fetch_add(1, Relaxed);
        self.latency_ms.fetch_add(latency_ms, Relaxed);
        self.latency_sq
            .fetch_add(latency_ms.saturating_mul(latency_ms), Relaxed);
        if self.in_streak.load(Relaxed) {
            self.in_streak.store(false, Relaxed);
            for n in &self.streak_by_kind {
                n.store(0, Relaxed);
            }
        }
    }

    /// Counts a failed attempt that reached the upstream.
    pub(crate) fn record_failure(&self, kind: ErrorKind) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        self.streak_by_kind[kind.index()].fetch_add(1, Relaxed);
        if !self.in_streak.load(Relaxed) {
            self.in_streak.store(true, Relaxed);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Seen {
    successes: u64,
    latency_ms: u64,
    latency_sq: u64,
    slow_calls: u64,
    /// Host time of the report; `None` before the first.
    at_ms: Option<u64>,
}

/// Permits whose successes a report holds at most: a plugin hands out
/// permits to the few attempts it must hear back from (a half-open
/// circuit's probes), so more than this between two reports means it
/// stopped listening; the oldest go first.
const MAX_PERMITTED_SUCCESSES: usize = 16;

/// How far one plugin has been told about one service's detail, and what
/// only this plugin counts: its slow calls and its permits' successes.
#[derive(Default)]
pub(crate) struct DetailCursor {
    seen: Mutex<Seen>,
    /// Successes slower than the plugin's threshold, ever.
    slow_calls: AtomicU64,
    /// Permits of this plugin whose attempts succeeded since the last report.
    permitted: Mutex<Vec<u64>>,
}

fn delta32(now: u64, seen: u64) -> u32 {
    u32::try_from(now.saturating_sub(seen)).unwrap_or(u32::MAX)
}

impl DetailCursor {
    /// A success that took `latency_ms`, for a plugin whose threshold is
    /// `threshold_ms`: counted if slower.
    #[inline]
    pub(crate) fn record_latency(&self, latency_ms: u64, threshold_ms: u64) {
        if latency_ms > threshold_ms {
            self.slow_calls.fetch_add(1, Relaxed);
        }
    }

    /// The attempt this plugin gave `permit` succeeded.
    pub(crate) fn record_permitted_success(&self, permit: u64) {
        let mut permitted = self.permitted.lock().unwrap_or_else(|p| p.into_inner());
        if permitted.len() >= MAX_PERMITTED_SUCCESSES {
            permitted.remove(0);
        }
        permitted.push(permit);
    }

    /// What happened since the last report, at host time `now_ms` (the
    /// host clock started at `start_ms`), and moves the cursor: concurrent
    /// callers each get a disjoint share.
    pub(crate) fn take(&self, stats: &DetailStats, now_ms: u64, start_ms: u64) -> RecentDetail {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let from = seen.at_ms.unwrap_or(start_ms);
        let now = Seen {
            successes: stats.successes.load(Relaxed),
            latency_ms: stats.latency_ms.load(Relaxed),
            latency_sq: stats.latency_sq.load(Relaxed),
            slow_calls: self.slow_calls.load(Relaxed),
            at_ms: Some(now_ms.max(from)),
        };
        let consecutive_by_kind = if stats.in_streak.load(Relaxed) {
            ErrorKind::ALL
                .iter()
                .filter_map(|k| {
                    let n = stats.streak_by_kind[k.index()].load(Relaxed);
                    (n > 0).then_some((*k, n))
                })
                .collect()
        } else {
            Vec::new()
        };
        let out = RecentDetail {
            latency: LatencySummary {
                count: delta32(now.successes, seen.successes),
                sum: now.latency_ms.saturating_sub(seen.latency_ms),
                sum_of_squares: now.latency_sq.saturating_sub(seen.latency_sq),
                span: now_ms.saturating_sub(from),
            },
            consecutive_by_kind,
            // The call path sets them: they belong to the call.
            upstreams: Default::default(),
            in_flight: 0,
            slow_calls: delta32(now.slow_calls, seen.slow_calls),
            permit: None,
            permitted_successes: std::mem::take(
                &mut *self.permitted.lock().unwrap_or_else(|p| p.into_inner()),
            ),
        };
        *seen = now;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> DetailStats {
        let stats = DetailStats::default();
        stats.enable();
        stats
    }

    #[test]
    fn nothing_is_counted_until_enabled() {
        let (stats, cursor) = (DetailStats::default(), DetailCursor::default());
        stats.record_success(10);
        stats.record_failure(ErrorKind::Timeout);
        assert_eq!(
            cursor.take(&stats, 5, 0),
            RecentDetail {
                latency: LatencySummary {
                    span: 5,
                    ..LatencySummary::default()
                },
                ..RecentDetail::default()
            }
        );
        stats.enable();
        stats.record_success(10);
        assert_eq!(cursor.take(&stats, 5, 0).latency.count, 1);
    }

    #[test]
    fn latencies_are_summed_and_squared_per_report() {
        let (stats, cursor) = (enabled(), DetailCursor::default());
        for ms in [10, 20, 30] {
            stats.record_success(ms);
        }
        let first = cursor.take(&stats, 1_000, 0);
        assert_eq!(
            first.latency,
            LatencySummary {
                count: 3,
                sum: 60,
                sum_of_squares: 100 + 400 + 900,
                span: 1_000,
            }
        );
        stats.record_success(5);
        let second = cursor.take(&stats, 1_250, 0);
        assert_eq!((second.latency.count, second.latency.sum), (1, 5));
        assert_eq!(second.latency.span, 250);
        // A clock read before the last report cannot make a span negative.
        assert_eq!(cursor.take(&stats, 1_000, 0).latency.span, 0);
        // The first report of a host whose clock starts at Unix time spans
        // from that start, not from 1970.
        let late = DetailCursor::default();
        assert_eq!(late.take(&stats, 5_000_100, 5_000_000).latency.span, 100);
    }

    #[test]
    fn slow_calls_and_permits_are_per_report() {
        let (stats, cursor) = (enabled(), DetailCursor::default());
        for ms in [50, 100, 101, 400] {
            stats.record_success(ms);
            cursor.record_latency(ms, 100);
        }
        cursor.record_permitted_success(7);
        let first = cursor.take(&stats, 10, 0);
        assert_eq!(first.slow_calls, 2, "slower than 100ms: 101 and 400");
        assert_eq!(first.permitted_successes, vec![7]);
        let second = cursor.take(&stats, 20, 0);
        assert_eq!(
            (second.slow_calls, second.permitted_successes.len()),
            (0, 0)
        );
        for p in 0..20 {
            cursor.record_permitted_success(p);
        }
        let kept = cursor.take(&stats, 30, 0).permitted_successes;
        assert_eq!(kept, (4..20).collect::<Vec<u64>>(), "the latest 16");
    }

    #[test]
    fn streaks_are_per_kind_and_end_at_a_success() {
        let (stats, cursor) = (enabled(), DetailCursor::default());
        stats.record_failure(ErrorKind::Timeout);
        stats.record_failure(ErrorKind::Timeout);
        stats.record_failure(ErrorKind::Connect);
        let streaks = cursor.take(&stats, 0, 0).consecutive_by_kind;
        assert_eq!(
            streaks,
            vec![(ErrorKind::Connect, 1), (ErrorKind::Timeout, 2)]
        );
        // Not a delta: still there at the next report.
        assert_eq!(cursor.take(&stats, 0, 0).consecutive_by_kind, streaks);
        stats.record_success(1);
        assert!(cursor.take(&stats, 0, 0).consecutive_by_kind.is_empty());
        stats.record_failure(ErrorKind::Auth);
        assert_eq!(
            cursor.take(&stats, 0, 0).consecutive_by_kind,
            vec![(ErrorKind::Auth, 1)]
        );
    }
}
