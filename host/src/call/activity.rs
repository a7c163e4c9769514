//! What the runtime remembers of recent calls, for a live view (the admin
//! listener's status page): each service's last minute ([`ServiceActivity`],
//! from `window.rs`) and a bounded ring of the latest decisions
//! ([`RecentDecision`]: "search#33 connect → retry in 93 ms [backoff]").
//!
//! Everything kept is already redacted (operations and messages pass the
//! redactor before they get here), and bounded: one window per service
//! (services are configured or capped), [`RECENT_DECISIONS`] decisions.
//! The hot path pays one atomic for the call's number, and at its end a
//! clock read and the lock of its own service's window, which the
//! service's pipeline holds (`pipeline/window.rs`): calls of different
//! services never wait for each other here. Decisions are only recorded
//! for failed attempts, as they were made ([`Decided`]: shared names, the
//! step, a clock reading the call already had); the line a person reads
//! is written when a snapshot asks for it, not on the error path.
//!
//! Time here is the wall clock, not the host clock: the demo replays its
//! script in virtual time, and a page that polls in real time wants "calls
//! per (real) second" and timestamps it can print.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::api::Step;
use crate::failure::ErrorKind;
use crate::pipeline::window::{Ended, SharedWindow, Window};
pub use crate::pipeline::window::{ServiceActivity, WINDOW_S};

/// Decisions kept: a few minutes of a service in trouble at a few calls
/// per second, and about 60 KB of JSON for the page to poll.
pub const RECENT_DECISIONS: usize = 200;

/// The runtime's memory of recent calls (one per runtime).
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// The wall clock at `epoch`, in ms since the Unix epoch: a decision's
    /// time is `epoch_unix_ms` plus its monotonic reading's offset.
    epoch_unix_ms: u64,
    next_call: AtomicU64,
    /// Every service's window, from its first ended call on.
    services: Mutex<Vec<(Arc<str>, Arc<SharedWindow>)>>,
    decisions: Mutex<VecDeque<Decided>>,
}

/// A decision as the call made it, kept in the ring; a
/// [`RecentDecision`] once a snapshot asks.
#[derive(Debug)]
pub(super) struct Decided {
    /// When, on the real clock (as everything here: see above).
    pub(super) at: Instant,
    pub(super) call: u64,
    pub(super) service: Arc<str>,
    /// Redacted.
    pub(super) operation: Arc<str>,
    pub(super) attempt: u32,
    pub(super) kind: ErrorKind,
    /// Its reason redacted, when it quotes a plugin.
    pub(super) step: Step,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            epoch_unix_ms: unix_ms(SystemTime::now()),
            next_call: AtomicU64::new(1),
            services: Mutex::default(),
            decisions: Mutex::default(),
        }
    }
}

/// What [`crate::Runtime::activity`] returns: the recent past, redacted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivitySnapshot {
    /// Each service that ended a call since the runtime was built, by name.
    pub services: Vec<ServiceActivity>,
    /// The latest decisions, newest first, at most [`RECENT_DECISIONS`].
    pub decisions: Vec<RecentDecision>,
}

/// One handled failure: what was decided, by whom, for which call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecentDecision {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The call's number in this runtime (1, 2, …): ties a call's
    /// attempts together.
    pub call: u64,
    /// The service.
    pub service: String,
    /// The operation, redacted.
    pub operation: String,
    /// Which attempt failed (1-based).
    pub attempt: u32,
    /// Its error kind (`connect`, `timeout`, `rejected`, …).
    pub kind: String,
    /// `retry`, `refresh`, `fallback` or `fail`.
    pub decision: String,
    /// The plugin that decided, when one did.
    pub by: Option<String>,
    /// The wait before the next attempt (after guardrail clamping).
    pub delay_ms: Option<u64>,
    /// Why the call ended (for `fail`), redacted.
    pub reason: Option<String>,
    /// The line a person reads: `search#33 connect → retry in 93 ms [backoff]`.
    pub text: String,
}

impl RecentDecision {
    /// What a person reads of `d`, which happened at `at_unix_ms`.
    fn of(d: &Decided, at_unix_ms: u64) -> Self {
        let (decision, by, delay, reason) = match &d.step {
            Step::Retry { by, delay } => ("retry", Some(by.clone()), Some(*delay), None),
            Step::RefreshCredentials { by } => ("refresh", Some(by.clone()), None, None),
            Step::Fallback { by } => ("fallback", Some(by.clone()), None, None),
            Step::Fail { reason, .. } => ("fail", None, None, Some(reason.clone())),
            Step::Hedged => ("hedged", None, None, None),
            Step::Cancelled { .. } => ("cancelled", None, None, None),
        };
        let what = match (decision, delay, &reason) {
            ("retry", Some(delay), _) => format!("retry in {} ms", delay.as_millis()),
            ("refresh", ..) => "refresh credentials".to_owned(),
            ("fail", _, Some(r)) => format!("fail: {r}"),
            (other, ..) => other.to_owned(),
        };
        let by_text = by.as_ref().map(|b| format!(" [{b}]")).unwrap_or_default();
        let (service, call, kind) = (&d.service, d.call, d.kind);
        RecentDecision {
            at_unix_ms,
            call,
            text: format!("{service}#{call} {kind} → {what}{by_text}"),
            service: service.to_string(),
            operation: d.operation.to_string(),
            attempt: d.attempt,
            kind: kind.as_str().to_owned(),
            decision: decision.to_owned(),
            by,
            delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            reason,
        }
    }
}

/// `t` in milliseconds since the Unix epoch (0 before it).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Activity {
    /// The window's second: the coarse clock, as a call must not pay a
    /// clock read for it.
    fn now_s(&self) -> u64 {
        crate::host::clock::coarse_seconds()
    }

    /// The next call's number.
    pub(super) fn next_call(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed)
    }

    /// `f` on `service`'s window (held by its pipeline), which is listed
    /// for snapshots from its first use on.
    fn window<R>(
        &self,
        service: &Arc<str>,
        shared: &Arc<SharedWindow>,
        f: impl FnOnce(&mut Window) -> R,
    ) -> R {
        // A poisoned lock only means a panic elsewhere mid-update of plain
        // counters: keep counting.
        let r = f(&mut shared.window.lock().unwrap_or_else(|e| e.into_inner()));
        if !shared.listed.load(Ordering::Relaxed) && !shared.listed.swap(true, Ordering::AcqRel) {
            let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
            services.push((service.clone(), shared.clone()));
        }
        r
    }

    /// A call of `service` ended after `took`.
    pub(super) fn call_ended(
        &self,
        service: &Arc<str>,
        window: &Arc<SharedWindow>,
        ended: Ended,
        took: Duration,
    ) {
        let now = self.now_s();
        self.window(service, window, |w| w.call_ended(now, ended, took));
    }

    /// A failed attempt was handled: remember the decision (and count a
    /// retry).
    pub(super) fn decided(&self, window: &Arc<SharedWindow>, decision: Decided) {
        if matches!(decision.step, Step::Retry { .. }) {
            let now = self.now_s();
            self.window(&decision.service, window, |w| w.retried(now));
        }
        let mut ring = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == RECENT_DECISIONS {
            ring.pop_front();
        }
        ring.push_back(decision);
    }

    /// The recent past, as of now.
    pub(crate) fn snapshot(&self) -> ActivitySnapshot {
        let now = self.now_s();
        let mut services: Vec<ServiceActivity> = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, w)| {
                let w = w.window.lock().unwrap_or_else(|e| e.into_inner());
                w.summary(name, now)
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let decisions = self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .map(|d| {
                let since = d.at.saturating_duration_since(self.epoch);
                let since = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
                RecentDecision::of(d, self.epoch_unix_ms.saturating_add(since))
            })
            .collect();
        ActivitySnapshot {
            services,
            decisions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(call: u64, attempt: u32, kind: ErrorKind, step: Step) -> Decided {
        Decided {
            at: Instant::now(),
            call,
            service: "search".into(),
            operation: "tools/call:find".into(),
            attempt,
            kind,
            step,
        }
    }

    #[test]
    fn a_decision_reads_as_one_line() {
        let step = Step::Retry {
            by: "backoff".into(),
            delay: Duration::from_millis(93),
        };
        let d = RecentDecision::of(&decided(33, 1, ErrorKind::Connect, step), 7);
        assert_eq!(d.text, "search#33 connect → retry in 93 ms [backoff]");
        assert_eq!((d.decision.as_str(), d.delay_ms), ("retry", Some(93)));
        assert_eq!((d.at_unix_ms, d.operation.as_str()), (7, "tools/call:find"));
        let step = Step::Fail {
            reason: "no strategy retries timeout".into(),
            cause: crate::api::GiveUp::NoStrategy {
                kind: ErrorKind::Timeout,
            },
        };
        let d = RecentDecision::of(&decided(34, 3, ErrorKind::Timeout, step), 7);
        assert_eq!(
            d.text,
            "search#34 timeout → fail: no strategy retries timeout"
        );
        assert_eq!(d.by, None);
    }

    #[test]
    fn the_ring_keeps_the_newest_first_and_is_bounded() {
        let a = Activity::default();
        let window = Arc::default();
        for call in 0..(RECENT_DECISIONS as u64 + 5) {
            let step = Step::Retry {
                by: "b".into(),
                delay: Duration::ZERO,
            };
            a.decided(&window, decided(call, 1, ErrorKind::Connect, step));
        }
        let snap = a.snapshot();
        assert_eq!(snap.decisions.len(), RECENT_DECISIONS);
        assert_eq!(snap.decisions[0].call, RECENT_DECISIONS as u64 + 4);
        assert_eq!(snap.decisions.last().map(|d| d.call), Some(5));
        assert_eq!(snap.services[0].retries, RECENT_DECISIONS as u64 + 5);
        // Timed by the wall clock, from the monotonic reading.
        let now = unix_ms(SystemTime::now());
        assert!(
            snap.decisions
                .iter()
                .all(|d| d.at_unix_ms.abs_diff(now) < 60_000)
        );
    }
}
