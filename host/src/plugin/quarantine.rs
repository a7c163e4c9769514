//! Quarantine: a plugin that keeps faulting is benched for a while.
//!
//! After `after` faults within `window`, the plugin is skipped (each call
//! gets its `on-fault` mode, without entering Wasm) for `cool_down`, then
//! re-admitted with a clean slate. A broken plugin costs a few failed hook
//! calls, not one per request, and it comes back by itself once fixed (or
//! once whatever made it fault, e.g. a poisoned input, has passed).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::QuarantinePolicy;
use crate::host::clock::duration_ms;

/// A plugin's fault history and quarantine state (host-clock ms).
pub(crate) struct Quarantine {
    policy: QuarantinePolicy,
    faults: Mutex<VecDeque<u64>>,
    /// Quarantined while `now < until`; 0 when never quarantined.
    until: AtomicU64,
    /// Times the plugin was quarantined.
    pub(crate) episodes: AtomicU64,
}

/// The outcome of recording a fault.
pub(crate) enum FaultEffect {
    /// Still in service.
    Counted,
    /// This fault quarantined the plugin until the given host-clock ms.
    Quarantined { faults: u32, until_ms: u64 },
}

impl Quarantine {
    pub(crate) fn new(policy: QuarantinePolicy) -> Self {
        Quarantine {
            policy,
            faults: Mutex::new(VecDeque::new()),
            until: AtomicU64::new(0),
            episodes: AtomicU64::new(0),
        }
    }

    /// The host-clock ms the quarantine ends at, if it is in force.
    #[inline]
    pub(crate) fn active(&self, now_ms: u64) -> Option<u64> {
        let until = self.until.load(Ordering::Acquire);
        (now_ms < until).then_some(until)
    }

    pub(crate) fn record_fault(&self, now_ms: u64) -> FaultEffect {
        if self.policy.after == 0 {
            return FaultEffect::Counted;
        }
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let window = duration_ms(self.policy.window);
        while faults
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= window)
        {
            faults.pop_front();
        }
        faults.push_back(now_ms);
        if faults.len() < self.policy.after as usize {
            return FaultEffect::Counted;
        }
        let count = faults.len() as u32;
        // A clean slate when it comes back: old faults do not re-bench it.
        faults.clear();
        let until_ms = now_ms.saturating_add(duration_ms(self.policy.cool_down));
        self.until.store(until_ms, Ordering::Release);
        self.episodes.fetch_add(1, Ordering::Relaxed);
        FaultEffect::Quarantined {
            faults: count,
            until_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quarantines_after_n_faults_in_window_then_readmits() {
        let q = Quarantine::new(QuarantinePolicy {
            after: 3,
            window: Duration::from_millis(100),
            cool_down: Duration::from_millis(50),
        });
        assert!(matches!(q.record_fault(0), FaultEffect::Counted));
        assert!(matches!(q.record_fault(10), FaultEffect::Counted));
        // The first fault left the window: still two.
        assert!(matches!(q.record_fault(105), FaultEffect::Counted));
        assert!(q.active(106).is_none());
        // 10, 105 and 108 are within 100 ms of each other: benched.
        match q.record_fault(108) {
            FaultEffect::Quarantined { faults, until_ms } => {
                assert_eq!((faults, until_ms), (3, 158))
            }
            FaultEffect::Counted => panic!("should be quarantined"),
        }
        assert_eq!(q.active(157), Some(158));
        assert!(q.active(158).is_none());
        // A clean slate afterwards.
        assert!(matches!(q.record_fault(159), FaultEffect::Counted));
    }
}
