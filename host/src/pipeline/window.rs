//! One service's last minute: calls, failures, retries and fallbacks per
//! second, and the latencies of the latest calls, for the status page's
//! rates, percentiles and sparklines.
//!
//! Why not read these off the metrics exporter: the Prometheus recorder
//! keeps totals since start (a rate needs two scrapes and a server to
//! subtract them) and exists only behind `--admin`. A window of sixty
//! one-second slots answers "the last minute" directly and costs a few
//! additions per call.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

/// Seconds a service's recent window ([`ServiceActivity`]) covers: long
/// enough to see a circuit open and close (the demo's breaker stays open
/// for seconds, not minutes), short enough that the page shows the present.
pub const WINDOW_S: u64 = 60;

/// Latencies kept for the percentiles: the latest calls in the window, at
/// most this many, so p99 means something at a few calls per second and
/// memory stays bounded at thousands.
const LATENCY_SAMPLES: usize = 1024;

/// One second's counts.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    /// Which second (since the runtime was built) the counts are for.
    at: u64,
    calls: u32,
    failures: u32,
    retries: u32,
    fallbacks: u32,
}

/// How a call ended, as the window counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The upstream answered (first try or after retries).
    Answered,
    /// A fallback answered.
    Fallback,
    /// The call failed (after reaching the upstream, or refused admission).
    Failed,
}

/// A service's window as its pipeline keeps it: shared with the
/// service's pipelines before and after a reload (like its counters), so
/// a call locks its own service's window, not a map of every service's.
#[derive(Debug, Default)]
pub(crate) struct SharedWindow {
    pub(crate) window: Mutex<Window>,
    /// Whether the runtime's activity lists this window yet (it does from
    /// the service's first ended call).
    pub(crate) listed: AtomicBool,
}

/// A service's sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    /// Indexed by second modulo [`WINDOW_S`]; a slot whose `at` is older
    /// than the window is stale and read as zero.
    seconds: [Second; WINDOW_S as usize],
    /// (second, duration) of the latest calls, oldest first.
    latencies: VecDeque<(u64, Duration)>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            seconds: [Second::default(); WINDOW_S as usize],
            latencies: VecDeque::new(),
        }
    }
}

impl Window {
    fn slot(&mut self, now_s: u64) -> &mut Second {
        let slot = &mut self.seconds[(now_s % WINDOW_S) as usize];
        if slot.at != now_s {
            *slot = Second {
                at: now_s,
                ..Second::default()
            };
        }
        slot
    }

    /// A call ended at second `now_s` after `took`.
    pub(crate) fn call_ended(&mut self, now_s: u64, ended: Ended, took: Duration) {
        let slot = self.slot(now_s);
        slot.calls += 1;
        match ended {
            Ended::Answered => {}
            Ended::Fallback => slot.fallbacks += 1,
            Ended::Failed => slot.failures += 1,
        }
        if self.latencies.len() == LATENCY_SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back((now_s, took));
    }

    /// A call was retried at second `now_s`.
    pub(crate) fn retried(&mut self, now_s: u64) {
        self.slot(now_s).retries += 1;
    }

    /// The window as of second `now_s`.
    pub(crate) fn summary(&self, service: &str, now_s: u64) -> ServiceActivity {
        let first = now_s.saturating_sub(WINDOW_S - 1);
        let live = |s: &&Second| s.at >= first && s.at <= now_s;
        let mut calls_per_second = vec![0; WINDOW_S as usize];
        let mut failures_per_second = vec![0; WINDOW_S as usize];
        let (mut calls, mut failures, mut retries, mut fallbacks) = (0u64, 0u64, 0u64, 0u64);
        for s in self.seconds.iter().filter(live) {
            // Oldest first: index 0 is `first`, the last is `now_s`. Added,
            // not set: slots never written (all zero, `at` 0) land on
            // index 0 too while the runtime is younger than the window.
            let i = (s.at - first) as usize;
            calls_per_second[i] += s.calls;
            failures_per_second[i] += s.failures;
            calls += u64::from(s.calls);
            failures += u64::from(s.failures);
            retries += u64::from(s.retries);
            fallbacks += u64::from(s.fallbacks);
        }
        let mut took: Vec<Duration> = self
            .latencies
            .iter()
            .filter(|(at, _)| *at >= first)
            .map(|(_, d)| *d)
            .collect();
        took.sort_unstable();
        // A runtime younger than the window has had fewer seconds to call
        // in; dividing by 60 would understate its rate.
        let span = (now_s + 1).min(WINDOW_S);
        ServiceActivity {
            service: service.to_owned(),
            window_s: WINDOW_S,
            calls,
            calls_per_s: calls as f64 / span as f64,
            failures,
            failure_rate: if calls == 0 {
                0.0
            } else {
                failures as f64 / calls as f64
            },
            retries,
            fallbacks,
            p50_ms: percentile(&took, 50),
            p99_ms: percentile(&took, 99),
            calls_per_second,
            failures_per_second,
        }
    }
}

/// The nearest-rank percentile `p` of `sorted`, in milliseconds.
fn percentile(sorted: &[Duration], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

/// One service over the last [`WINDOW_S`] seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceActivity {
    /// The service (for the gateway: the server's name).
    pub service: String,
    /// Seconds the counts cover.
    pub window_s: u64,
    /// Calls that ended in the window.
    pub calls: u64,
    /// Calls per second over the window (or over the runtime's life, when
    /// that is shorter).
    pub calls_per_s: f64,
    /// Calls that failed for good (including refused admission).
    pub failures: u64,
    /// `failures / calls`, 0 without calls.
    pub failure_rate: f64,
    /// Retries the guardrails let through.
    pub retries: u64,
    /// Calls a fallback answered.
    pub fallbacks: u64,
    /// Median call duration, in milliseconds, of the latest calls.
    pub p50_ms: Option<f64>,
    /// 99th percentile call duration, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Calls per second, oldest first, one entry per second of the window.
    pub calls_per_second: Vec<u32>,
    /// Failures per second, aligned with `calls_per_second`.
    pub failures_per_second: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_rates_and_percentiles_over_the_last_minute() {
        let mut w = Window::default();
        // Second 0: 98 fast answers, one failure, one fallback.
        for _ in 0..98 {
            w.call_ended(0, Ended::Answered, ms(10));
        }
        w.call_ended(0, Ended::Failed, ms(500));
        w.call_ended(0, Ended::Fallback, ms(900));
        w.retried(0);
        w.retried(0);
        // Second 9: one more answer.
        w.call_ended(9, Ended::Answered, ms(20));

        let s = w.summary("search", 9);
        assert_eq!(
            (s.calls, s.failures, s.retries, s.fallbacks),
            (101, 1, 2, 1)
        );
        // Ten seconds old: the rate is over ten seconds, not sixty.
        assert!((s.calls_per_s - 10.1).abs() < 1e-9, "{}", s.calls_per_s);
        assert!((s.failure_rate - 1.0 / 101.0).abs() < 1e-9);
        assert_eq!(s.p50_ms, Some(10.0));
        // Rank ceil(0.99 × 101) = 100: the failure's 500 ms.
        assert_eq!(s.p99_ms, Some(500.0));
        assert_eq!(s.calls_per_second.len(), WINDOW_S as usize);
        assert_eq!(s.calls_per_second[0], 100);
        assert_eq!(s.calls_per_second[9], 1);
        assert_eq!(s.failures_per_second[0], 1);
    }

    #[test]
    fn seconds_older_than_the_window_are_forgotten() {
        let mut w = Window::default();
        w.call_ended(5, Ended::Failed, ms(100));
        w.retried(5);
        // Second 65 reuses second 5's slot; second 64 is still in range.
        let s = w.summary("search", 64);
        assert_eq!((s.calls, s.failures, s.retries), (1, 1, 1));
        assert_eq!(s.calls_per_second[0], 1, "second 5 is the oldest kept");
        let s = w.summary("search", 65);
        assert_eq!((s.calls, s.failures, s.retries), (0, 0, 0));
        assert_eq!(s.p50_ms, None, "its latency left the window too");
        w.call_ended(65, Ended::Answered, ms(7));
        let s = w.summary("search", 65);
        assert_eq!((s.calls, s.failures), (1, 0), "the slot was reset");
        assert!((s.calls_per_s - 1.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn latencies_are_bounded() {
        let mut w = Window::default();
        for i in 0..(LATENCY_SAMPLES as u64 + 10) {
            w.call_ended(1, Ended::Answered, ms(i));
        }
        assert_eq!(w.latencies.len(), LATENCY_SAMPLES);
        assert_eq!(w.latencies.front().map(|l| l.1), Some(ms(10)));
    }
}
