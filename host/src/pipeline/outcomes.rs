//! Outcomes counted natively, and leases checked natively: why a successful
//! call costs no Wasm call.
//!
//! Every attempt's result is added to its service's [`ServiceStats`] with a
//! few relaxed atomic operations. Each strategy slot keeps a cursor into
//! those totals; the next time the host calls into the plugin for the
//! service, it hands over the difference as WIT `outcomes`. Admission
//! answers may carry a lease, kept in a [`LeaseCell`] and checked with
//! atomics before each attempt.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use crate::failure::ErrorKind;
use crate::plugin::bindings::wit;

/// Running totals of one service's attempts.
#[derive(Default)]
pub(crate) struct ServiceStats {
    successes: AtomicU64,
    failures: AtomicU64,
    by_kind: [AtomicU64; ErrorKind::ALL.len()],
    consecutive_failures: AtomicU32,
    success_latency_ms: AtomicU64,
    /// What contract 0.2 adds (`detail.rs`).
    pub(crate) detail: super::detail::DetailStats,
}

impl ServiceStats {
    pub(crate) fn record_success(&self, latency_ms: u64) {
        self.successes.fetch_add(1, Relaxed);
        self.success_latency_ms.fetch_add(latency_ms, Relaxed);
        self.detail.record_success(latency_ms);
        // A plain load first: on the happy path the counter is already 0,
        // and a store would dirty a shared cache line for nothing.
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// Counts a failed attempt that reached the upstream.
    pub(crate) fn record_failure(&self, kind: ErrorKind) {
        self.failures.fetch_add(1, Relaxed);
        self.by_kind[kind.index()].fetch_add(1, Relaxed);
        self.consecutive_failures.fetch_add(1, Relaxed);
        self.detail.record_failure(kind);
    }

    fn totals(&self) -> Totals {
        Totals {
            successes: self.successes.load(Relaxed),
            failures: self.failures.load(Relaxed),
            by_kind: std::array::from_fn(|i| self.by_kind[i].load(Relaxed)),
            success_latency_ms: self.success_latency_ms.load(Relaxed),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Totals {
    successes: u64,
    failures: u64,
    by_kind: [u64; ErrorKind::ALL.len()],
    success_latency_ms: u64,
}

/// How far one plugin has been told about one service.
#[derive(Default)]
pub(crate) struct Cursor {
    seen: Mutex<Totals>,
}

fn delta32(now: u64, seen: u64) -> u32 {
    u32::try_from(now.saturating_sub(seen)).unwrap_or(u32::MAX)
}

impl Cursor {
    /// What happened on the service since the last call, and moves the
    /// cursor: concurrent callers each get a disjoint share.
    pub(crate) fn take(&self, stats: &ServiceStats, lease: &LeaseCell) -> wit::Outcomes {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = stats.totals();
        let failures_by_kind = ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                let n = delta32(now.by_kind[k.index()], seen.by_kind[k.index()]);
                (n > 0).then(|| ((*k).into(), n))
            })
            .collect();
        let out = wit::Outcomes {
            successes: delta32(now.successes, seen.successes),
            failures: delta32(now.failures, seen.failures),
            failures_by_kind,
            consecutive_failures: stats.consecutive_failures.load(Relaxed),
            success_latency_total: now
                .success_latency_ms
                .saturating_sub(seen.success_latency_ms),
            leased_attempts: lease.leased.swap(0, Relaxed),
        };
        *seen = now;
        out
    }
}

/// Sentinel: no lease (time 0 is never in the future).
const NO_LEASE: u64 = 0;
/// Sentinel: the lease has no attempt limit.
const UNLIMITED: i64 = i64::MAX;
/// Sentinel: the grant set no attempt timeout.
const NO_TIMEOUT: u64 = u64::MAX;
/// Sentinel: the grant routed nowhere.
const NO_UPSTREAM: u32 = u32::MAX;
/// Sentinel: the grant carries no hedge.
const NO_HEDGE: u64 = u64::MAX;

/// A strategy's current admission lease on one service.
pub(crate) struct LeaseCell {
    /// Host-clock millisecond the lease ends at; written last on grant and
    /// first on revoke, so a reader never sees a half-written lease as live.
    until_ms: AtomicU64,
    attempts_left: AtomicI64,
    until_failure: AtomicBool,
    timeout_ms: AtomicU64,
    /// Routing: the upstream the grant sends its attempts to.
    upstream: AtomicU32,
    /// The grant's hedge (`hedge_after_ms` is [`NO_HEDGE`] without one).
    hedge_after_ms: AtomicU64,
    hedge_max: AtomicU32,
    /// Attempts admitted under the lease since the plugin was last called.
    leased: AtomicU32,
}

impl Default for LeaseCell {
    fn default() -> Self {
        LeaseCell {
            until_ms: AtomicU64::new(NO_LEASE),
            attempts_left: AtomicI64::new(UNLIMITED),
            until_failure: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(NO_TIMEOUT),
            upstream: AtomicU32::new(NO_UPSTREAM),
            hedge_after_ms: AtomicU64::new(NO_HEDGE),
            hedge_max: AtomicU32::new(0),
            leased: AtomicU32::new(0),
        }
    }
}

/// An admission granted from a lease: the attempt timeout, the upstream
/// (contract 0.2's routing) and the hedge it carries.
pub(crate) struct Leased {
    pub(crate) timeout: Option<Duration>,
    pub(crate) upstream: Option<u32>,
    pub(crate) hedge: Option<wit::Hedge>,
}

impl LeaseCell {
    /// Admits one attempt under the lease, if it holds.
    #[inline]
    pub(crate) fn try_admit(&self, now_ms: u64) -> Option<Leased> {
        if now_ms >= self.until_ms.load(Acquire) {
            return None;
        }
        if self.attempts_left.load(Relaxed) != UNLIMITED
            && self.attempts_left.fetch_sub(1, Relaxed) <= 0
        {
            return None;
        }
        self.leased.fetch_add(1, Relaxed);
        let t = self.timeout_ms.load(Relaxed);
        let u = self.upstream.load(Relaxed);
        let after = self.hedge_after_ms.load(Relaxed);
        Some(Leased {
            timeout: (t != NO_TIMEOUT).then(|| Duration::from_millis(t)),
            upstream: (u != NO_UPSTREAM).then_some(u),
            hedge: (after != NO_HEDGE).then(|| wit::Hedge {
                after,
                max: self.hedge_max.load(Relaxed),
            }),
        })
    }

    /// Records an `allow`: a lease if the grant has one, else none;
    /// `upstream` is where 0.2's grant routed it.
    pub(crate) fn grant(&self, grant: &wit::Grant, upstream: Option<u32>, now_ms: u64) {
        self.until_ms.store(NO_LEASE, Release);
        let Some(lease) = &grant.lease else { return };
        if lease.ttl == 0 {
            return;
        }
        self.attempts_left
            .store(lease.max_attempts.map_or(UNLIMITED, i64::from), Relaxed);
        self.until_failure.store(lease.until_failure, Relaxed);
        self.timeout_ms
            .store(grant.attempt_timeout.unwrap_or(NO_TIMEOUT), Relaxed);
        self.upstream
            .store(upstream.unwrap_or(NO_UPSTREAM), Relaxed);
        // A hedge after u64::MAX ms would never fire: the same as none.
        let (after, max) = grant.hedge.map_or((NO_HEDGE, 0), |h| (h.after, h.max));
        self.hedge_after_ms.store(after, Relaxed);
        self.hedge_max.store(max, Relaxed);
        self.until_ms
            .store(now_ms.saturating_add(lease.ttl), Release);
    }

    /// Ends the lease.
    pub(crate) fn revoke(&self) {
        self.until_ms.store(NO_LEASE, Release);
    }

    /// A failed attempt ends leases granted `until-failure`.
    pub(crate) fn on_failure(&self) {
        if self.until_failure.load(Relaxed) && self.until_ms.load(Relaxed) != NO_LEASE {
            self.revoke();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ttl: u64, max: Option<u32>, until_failure: bool) -> wit::Grant {
        wit::Grant {
            attempt_timeout: Some(250),
            lease: Some(wit::Lease {
                ttl,
                max_attempts: max,
                until_failure,
            }),
            hedge: None,
        }
    }

    #[test]
    fn lease_holds_for_ttl_and_count() {
        let l = LeaseCell::default();
        assert!(l.try_admit(0).is_none());
        l.grant(&grant(100, Some(2), false), None, 10);
        let a = l.try_admit(50).unwrap();
        assert_eq!(a.timeout, Some(Duration::from_millis(250)));
        assert_eq!(a.hedge, None);
        assert!(l.try_admit(60).is_some());
        assert!(l.try_admit(70).is_none(), "max-attempts exhausted");
        l.grant(&grant(100, None, false), Some(1), 100);
        assert_eq!(
            l.try_admit(199).unwrap().upstream,
            Some(1),
            "the grant's route"
        );
        assert!(l.try_admit(200).is_none(), "ttl over");
    }

    #[test]
    fn lease_carries_the_grants_hedge() {
        let l = LeaseCell::default();
        let mut g = grant(100, None, false);
        g.hedge = Some(wit::Hedge { after: 40, max: 2 });
        l.grant(&g, None, 0);
        let hedge = wit::Hedge { after: 40, max: 2 };
        assert_eq!(l.try_admit(1).unwrap().hedge, Some(hedge));
        l.grant(&grant(100, None, false), None, 10);
        assert_eq!(
            l.try_admit(11).unwrap().hedge,
            None,
            "a later grant without one"
        );
    }

    #[test]
    fn until_failure_lease_ends_on_failure() {
        let l = LeaseCell::default();
        l.grant(&grant(1_000, None, true), None, 0);
        assert!(l.try_admit(1).is_some());
        l.on_failure();
        assert!(l.try_admit(2).is_none());
        l.grant(&grant(1_000, None, false), None, 0);
        l.on_failure();
        assert!(l.try_admit(2).is_some(), "plain lease survives failures");
    }

    #[test]
    fn cursor_hands_over_deltas() {
        let s = ServiceStats::default();
        let l = LeaseCell::default();
        let c = Cursor::default();
        s.record_success(10);
        s.record_failure(ErrorKind::Timeout);
        s.record_failure(ErrorKind::Timeout);
        l.grant(&grant(1_000, None, false), None, 0);
        l.try_admit(1);
        let o = c.take(&s, &l);
        assert_eq!((o.successes, o.failures, o.consecutive_failures), (1, 2, 2));
        assert_eq!(o.success_latency_total, 10);
        assert_eq!(o.leased_attempts, 1);
        assert_eq!(o.failures_by_kind.len(), 1);
        s.record_success(5);
        let o = c.take(&s, &l);
        assert_eq!((o.successes, o.failures, o.consecutive_failures), (1, 0, 0));
        assert!(o.failures_by_kind.is_empty());
        assert_eq!(o.leased_attempts, 0);
    }
}
