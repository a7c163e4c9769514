//! Slow-call rate tripping, as Resilience4j's `slowCallRateThreshold`:
//! open the circuit when at least `slow-call-rate` of the calls in the
//! last `window` were successes slower than `slow-call-threshold`, once
//! the window holds `minimum-calls` calls. A service that answers, but
//! too slowly to be useful, is as good as down to an agent waiting on it.
//!
//! The breaker declares `slow-call-threshold` to the host at `init`
//! (contract 0.2's `strategy-info`), and the host counts the slow
//! successes for it: `current.slow-calls()`, over the same report as the
//! other outcomes.
//!
//! State keys (beside the failure-ratio window's, and bucketed the same
//! way, see [`crate::window`]): `scalls:<epoch>:<bucket>`, the calls
//! (successes and counted failures), and `slow:<epoch>:<bucket>`, the slow
//! successes, each grown with atomic `increment` and expiring on its own.

use mender_guest::prelude::*;
use mender_guest::state::{Op, OpResult};

use crate::ops::{Ops, count, delta};

use crate::config::Config;
use crate::window::BUCKETS;

/// Checks the slow-call keys of `config`: both or neither, a rate in (0, 1].
pub fn validate(config: &Config) -> Result<(), String> {
    let bad = |why: String| Err(format!("invalid config: {why}"));
    match (config.slow_call_threshold, config.slow_call_rate) {
        (None, None) => Ok(()),
        (Some(_), None) => bad("slow-call-threshold is set but slow-call-rate is not".into()),
        (None, Some(_)) => bad("slow-call-rate is set but slow-call-threshold is not".into()),
        (Some(t), Some(_)) if t.get() == 0 => {
            bad("slow-call-threshold must be longer than 0ms".into())
        }
        (Some(_), Some(rate)) if !(rate > 0.0 && rate <= 1.0) => {
            bad(format!("slow-call-rate must be in (0, 1], got {rate}"))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// The slow-call trigger of a validated config.
#[derive(Debug)]
pub struct SlowCalls {
    threshold: Millis,
    rate: f64,
    bucket_width: u64,
    window: Millis,
    minimum_calls: u64,
}

impl SlowCalls {
    /// The trigger, if `config` sets one.
    pub fn new(config: &Config) -> Option<SlowCalls> {
        Some(SlowCalls {
            threshold: config.slow_call_threshold?,
            rate: config.slow_call_rate?,
            bucket_width: (config.window.get() / BUCKETS).max(1),
            window: config.window,
            minimum_calls: u64::from(config.minimum_calls),
        })
    }

    /// What the breaker declares to the host at `init`.
    pub fn threshold(&self) -> u64 {
        self.threshold.get()
    }

    /// Adds a report of a closed circuit (`calls` of which `slow` were slow
    /// successes) to the window of `epoch`, and, if a call was slow (the
    /// share only rises then), reads the window back to judge it.
    pub fn plan(
        &self,
        ops: &mut Ops,
        now: u64,
        epoch: u64,
        calls: u64,
        slow: u64,
    ) -> Option<SlowReads> {
        let bucket = now / self.bucket_width;
        let ttl = Some(self.bucket_width * (BUCKETS + 1));
        if calls > 0 {
            ops.push(Op::increment(
                &format!("scalls:{epoch}:{bucket}"),
                delta(calls),
                ttl,
            ));
        }
        if slow == 0 {
            return None;
        }
        ops.push(Op::increment(
            &format!("slow:{epoch}:{bucket}"),
            delta(slow),
            ttl,
        ));
        let first = bucket.saturating_sub(BUCKETS - 1);
        let at = ops.next_at();
        for b in first..=bucket {
            ops.push(Op::get(&format!("scalls:{epoch}:{b}")));
            ops.push(Op::get(&format!("slow:{epoch}:{b}")));
        }
        Some(SlowReads {
            at,
            buckets: (bucket - first + 1) as usize,
        })
    }

    /// Why to open, if the slow share read back is now at the rate.
    pub fn judge(&self, reads: SlowReads, results: &[OpResult]) -> Option<String> {
        let (mut in_window, mut slow_in_window) = (0, 0);
        for b in 0..reads.buckets {
            in_window += count(results, reads.at + 2 * b);
            slow_in_window += count(results, reads.at + 2 * b + 1);
        }
        (in_window >= self.minimum_calls
            && slow_in_window as f64 >= self.rate * in_window as f64)
            .then(|| {
                format!(
                    "{slow_in_window} of {in_window} calls slower than {} in the last {} (slow-call-rate {})",
                    self.threshold, self.window, self.rate
                )
            })
    }
}

/// Where the slow-call window's reads are in a batch's results.
#[derive(Clone, Copy, Debug)]
pub struct SlowReads {
    at: usize,
    buckets: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::MemoryStore;

    impl SlowCalls {
        /// A report, judged: what the breaker does in one batch.
        fn report(
            &self,
            store: &MemoryStore,
            now: u64,
            epoch: u64,
            calls: u64,
            slow: u64,
        ) -> Option<String> {
            let mut ops = Ops::default();
            let reads = self.plan(&mut ops, now, epoch, calls, slow);
            let results = ops.run(store);
            reads.and_then(|r| self.judge(r, &results))
        }
    }

    fn slow_calls(json: &str) -> SlowCalls {
        let config: Config = mender_guest::config::parse(json).unwrap();
        config.validate().unwrap();
        SlowCalls::new(&config).unwrap()
    }

    #[test]
    fn trips_at_the_rate_once_the_window_has_enough_calls() {
        let s = slow_calls(
            r#"{"slow-call-threshold": "1s", "slow-call-rate": 0.5, "minimum-calls": 4}"#,
        );
        let store = MemoryStore::new();
        assert_eq!(s.report(&store, 0, 0, 2, 2), None, "2 calls: too few");
        assert_eq!(s.report(&store, 0, 0, 4, 0), None, "2 of 6: under half");
        assert_eq!(s.report(&store, 0, 0, 1, 1), None, "3 of 7: under half");
        let why = s.report(&store, 0, 0, 1, 1).unwrap();
        assert!(why.starts_with("4 of 8 calls slower than 1s"), "{why}");
    }

    #[test]
    fn old_calls_leave_the_window() {
        let s = slow_calls(
            r#"{"slow-call-threshold": "1s", "slow-call-rate": 0.5, "minimum-calls": 2, "window": "10s"}"#,
        );
        let store = MemoryStore::new();
        s.report(&store, 0, 0, 10, 0);
        assert!(s.report(&store, 5_000, 0, 2, 2).is_none(), "2 of 12");
        assert!(s.report(&store, 11_000, 0, 1, 1).is_some(), "3 of 3 left");
    }

    #[test]
    fn bad_slow_configs_say_what_is_wrong() {
        let cases = [
            (r#"{"slow-call-threshold": "1s"}"#, "slow-call-rate is not"),
            (r#"{"slow-call-rate": 0.5}"#, "slow-call-threshold is not"),
            (
                r#"{"slow-call-threshold": "1s", "slow-call-rate": 1.5}"#,
                "slow-call-rate must be in (0, 1]",
            ),
            (
                r#"{"slow-call-threshold": 0, "slow-call-rate": 0.5}"#,
                "slow-call-threshold must be longer",
            ),
        ];
        for (json, expected) in cases {
            let config: Config = mender_guest::config::parse(json).unwrap();
            let err = config.validate().unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
