//! Contract 0.2's in-flight count: how many attempts of a service are
//! between their admission and their outcome in this process, for
//! `current.in-flight()`.
//!
//! An attempt is counted from *before* any plugin is asked to admit it
//! (a [`Ticket`] is reserved at the start of admission) until its
//! outcome is counted, and a plugin is told the others. Counting before
//! asking is what makes a limit a plugin enforces at `admit` hold however
//! many attempts are admitted at once: of any set of attempts running
//! together, the last to reserve saw all the others counted, so a plugin
//! that admits only while fewer than `limit` others are in flight never
//! lets more than `limit` run. (The `max-in-flight` bulkhead counts only
//! attempts holding a slot, after admission; it stays the host's own cap.)
//!
//! Counted only for services with a plugin that can read it (the same
//! switch as `detail.rs`): elsewhere a call pays one relaxed load when it
//! starts.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use super::outcomes::ServiceStats;

/// One call's place in its service's in-flight count: held from the
/// start of an attempt's admission to its outcome, released when the call
/// is dropped however it ends.
pub(crate) struct Ticket {
    /// `None`: the service's count is off (no 0.2 plugin), nothing to do.
    stats: Option<Arc<ServiceStats>>,
    held: AtomicBool,
}

impl Ticket {
    /// A ticket for a call on the service of `stats`.
    pub(crate) fn new(stats: &Arc<ServiceStats>) -> Ticket {
        Ticket {
            stats: stats.detail.counts().then(|| stats.clone()),
            held: AtomicBool::new(false),
        }
    }

    /// A ticket counted at once: a hedge's, which starts without an
    /// admission of its own.
    pub(crate) fn reserved(stats: &Arc<ServiceStats>) -> Ticket {
        let ticket = Ticket::new(stats);
        ticket.reserve();
        ticket
    }

    /// Counts the attempt about to be admitted, unless it already is.
    #[inline]
    pub(crate) fn reserve(&self) {
        if let Some(stats) = &self.stats
            && !self.held.swap(true, AcqRel)
        {
            stats.detail.enter();
        }
    }

    /// The attempt has an outcome (or was refused): no longer in flight.
    #[inline]
    pub(crate) fn release(&self) {
        if let Some(stats) = &self.stats
            && self.held.swap(false, AcqRel)
        {
            stats.detail.leave();
        }
    }

    /// Attempts of the service in flight, this call's own not counted.
    pub(crate) fn others(&self) -> u32 {
        match &self.stats {
            Some(stats) => {
                let own = u32::from(self.held.load(Acquire));
                stats.detail.in_flight().saturating_sub(own)
            }
            None => 0,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting() -> Arc<ServiceStats> {
        let stats = Arc::new(ServiceStats::default());
        stats.detail.enable();
        stats
    }

    #[test]
    fn a_ticket_counts_once_from_reserve_to_release() {
        let stats = counting();
        let (a, b) = (Ticket::new(&stats), Ticket::new(&stats));
        a.reserve();
        a.reserve(); // a lease and then a plugin: still one attempt
        b.reserve();
        assert_eq!(stats.detail.in_flight(), 2);
        assert_eq!((a.others(), b.others()), (1, 1));
        a.release();
        a.release();
        assert_eq!(stats.detail.in_flight(), 1);
        assert_eq!(a.others(), 1, "a released ticket sees every other");
        drop(b);
        assert_eq!(stats.detail.in_flight(), 0, "a dropped call leaves");
    }

    #[test]
    fn nothing_is_counted_for_a_service_without_a_reader() {
        let stats = Arc::new(ServiceStats::default());
        let t = Ticket::new(&stats);
        t.reserve();
        assert_eq!((stats.detail.in_flight(), t.others()), (0, 0));
    }

    #[test]
    fn concurrent_admissions_never_all_see_room() {
        // Each thread reserves, then admits only if fewer than `limit`
        // others are in flight, as a limiting plugin does; the number
        // admitted at once must never pass the limit.
        let stats = counting();
        let limit = 3;
        let running = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (stats, running, peak) = (stats.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        let t = Ticket::new(&stats);
                        t.reserve();
                        if t.others() < limit {
                            let now = running.fetch_add(1, AcqRel) + 1;
                            peak.fetch_max(now, AcqRel);
                            std::hint::spin_loop();
                            running.fetch_sub(1, AcqRel);
                        }
                        t.release();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Acquire) <= limit, "peak {}", peak.load(Acquire));
        assert_eq!(stats.detail.in_flight(), 0);
    }
}
