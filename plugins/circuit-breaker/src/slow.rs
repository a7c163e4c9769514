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
use mender_guest::state::Store;

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
    /// successes) to the window of `epoch`, and says why to open if the
    /// slow share is now at the rate.
    pub fn judge(
        &self,
        store: &dyn Store,
        now: u64,
        epoch: u64,
        calls: u64,
        slow: u64,
    ) -> Option<String> {
        let bucket = now / self.bucket_width;
        let ttl = Some(self.bucket_width * (BUCKETS + 1));
        if calls > 0 {
            store.increment(&format!("scalls:{epoch}:{bucket}"), to_i64(calls), ttl);
        }
        // The share only rises with a slow call: judge it only then.
        if slow == 0 {
            return None;
        }
        store.increment(&format!("slow:{epoch}:{bucket}"), to_i64(slow), ttl);
        let (mut in_window, mut slow_in_window) = (0, 0);
        for b in bucket.saturating_sub(BUCKETS - 1)..=bucket {
            in_window += store.get_u64(&format!("scalls:{epoch}:{b}")).unwrap_or(0);
            slow_in_window += store.get_u64(&format!("slow:{epoch}:{b}")).unwrap_or(0);
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

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::MemoryStore;

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
        assert_eq!(s.judge(&store, 0, 0, 2, 2), None, "2 calls: too few");
        assert_eq!(s.judge(&store, 0, 0, 4, 0), None, "2 of 6: under half");
        assert_eq!(s.judge(&store, 0, 0, 1, 1), None, "3 of 7: under half");
        let why = s.judge(&store, 0, 0, 1, 1).unwrap();
        assert!(why.starts_with("4 of 8 calls slower than 1s"), "{why}");
    }

    #[test]
    fn old_calls_leave_the_window() {
        let s = slow_calls(
            r#"{"slow-call-threshold": "1s", "slow-call-rate": 0.5, "minimum-calls": 2, "window": "10s"}"#,
        );
        let store = MemoryStore::new();
        s.judge(&store, 0, 0, 10, 0);
        assert!(s.judge(&store, 5_000, 0, 2, 2).is_none(), "2 of 12");
        assert!(s.judge(&store, 11_000, 0, 1, 1).is_some(), "3 of 3 left");
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
