//! The bulkhead behind the `max-in-flight` guardrail: at most `max`
//! attempts of a service in flight at once in this process, a bounded
//! queue for the ones over, each waiting at most `queue-timeout`.
//!
//! One per service, kept across reloads like its counters, so a reload
//! (which may change the limit) never lets the old and the new pipeline's
//! attempts add up past it. The limit is read at each entry: the one in
//! force when the attempt asks.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::InFlightLimit;

#[derive(Default)]
pub(crate) struct Bulkhead {
    in_flight: AtomicU32,
    queued: AtomicU32,
    freed: Notify,
}

/// Why an attempt got no slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max` in flight and `max_queued` already waiting.
    QueueFull { in_flight: u32, queued: u32 },
    /// It waited `waited` and no slot came free.
    TimedOut { waited: Duration },
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::QueueFull { in_flight, queued } => write!(
                f,
                "max-in-flight reached: {in_flight} attempts in flight and {queued} queued"
            ),
            Full::TimedOut { waited } => {
                write!(f, "max-in-flight reached: no slot came free in {waited:?}")
            }
        }
    }
}

/// A slot, held for the attempt's life.
pub(crate) struct Slot(Arc<Bulkhead>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, AcqRel);
        self.0.freed.notify_one();
    }
}

/// Takes one off the queue count when the waiter leaves, however it leaves
/// (a slot, a timeout, or the call dropped while it waits).
struct Queued<'a>(&'a AtomicU32);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

impl Bulkhead {
    /// Attempts in flight now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Acquire)
    }

    /// A slot under `max` if one is free now, without waiting.
    pub(crate) fn try_enter(self: &Arc<Self>, max: u32) -> Option<Slot> {
        self.in_flight
            .fetch_update(AcqRel, Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// A slot under `limit`, waiting in the queue at most `limit`'s
    /// timeout or `left` (the call's deadline), whichever ends first.
    pub(crate) async fn enter(
        self: &Arc<Self>,
        limit: &InFlightLimit,
        left: Option<Duration>,
    ) -> Result<Slot, Full> {
        if let Some(slot) = self.try_enter(limit.max) {
            return Ok(slot);
        }
        let queued = self.queued.fetch_add(1, AcqRel);
        let _queued = Queued(&self.queued);
        if queued >= limit.max_queued {
            return Err(Full::QueueFull {
                in_flight: self.in_flight(),
                queued,
            });
        }
        let wait = left.map_or(limit.queue_timeout, |l| l.min(limit.queue_timeout));
        let until = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so a slot freed between the
            // check and the wait still wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_enter(limit.max) {
                return Ok(slot);
            }
            if tokio::time::timeout_at(until, freed).await.is_err() {
                // A slot freed as the timer fired goes to the next waiter.
                self.freed.notify_one();
                return Err(Full::TimedOut { waited: wait });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_bounded_queued_and_timed_out() {
        let b = Arc::new(Bulkhead::default());
        let limit = InFlightLimit {
            max: 2,
            max_queued: 1,
            queue_timeout: Duration::from_millis(100),
        };
        let one = b.enter(&limit, None).await.unwrap();
        let _two = b.enter(&limit, None).await.unwrap();
        assert_eq!(b.in_flight(), 2);
        // The third waits; the fourth finds the queue full.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.enter(&limit, None).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        assert_eq!(
            b.enter(&limit, None).await.err(),
            Some(Full::QueueFull {
                in_flight: 2,
                queued: 1
            })
        );
        drop(one);
        assert_eq!(
            waiter.await.unwrap(),
            Ok(()),
            "a freed slot goes to the waiter"
        );
        // Nothing frees now: the next waiter times out at the queue timeout,
        // or sooner at the call's deadline.
        let _three = b.enter(&limit, None).await.unwrap();
        let timed_out = b.enter(&limit, None).await.err();
        assert_eq!(
            timed_out,
            Some(Full::TimedOut {
                waited: Duration::from_millis(100)
            })
        );
        let sooner = b.enter(&limit, Some(Duration::from_millis(10))).await.err();
        assert_eq!(
            sooner,
            Some(Full::TimedOut {
                waited: Duration::from_millis(10)
            })
        );
        assert_eq!(
            b.queued.load(Acquire),
            0,
            "waiters that left are off the queue"
        );
    }
}
