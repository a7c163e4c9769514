//! The adaptive limit: AIMD, as Netflix's concurrency-limits does it
//! (`AIMDLimit`), over the outcomes the host reports.
//!
//! Each report moves the limit once: down by `backoff-ratio` if it holds
//! a sign of overload (a failure of an overload kind, or a success slower
//! than `latency-target`, which the host counts as this plugin's slow
//! calls), else up by one per success, but only while the service uses at
//! least half the limit (a limit nobody reaches proves nothing, and would
//! grow without bound on a quiet service).
//!
//! State key (scoped by the host to this plugin and the service): `limit`,
//! the current limit as a decimal number. Every change is a
//! compare-and-swap, so concurrent instances (and, on Redis, processes)
//! each apply their own report to the latest limit.

use mender_guest::prelude::*;
use mender_guest::state::Store;

use crate::config::Config;

/// The key holding the limit.
const LIMIT: &str = "limit";

/// How many times a report is re-applied after losing a race to another
/// instance before the limit read last is used as it is.
const MAX_RACES: usize = 3;

/// What one report says about load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Successes in the report.
    pub successes: u32,
    /// Successes slower than the latency target.
    pub slow: u32,
    /// Failures of an overload kind.
    pub overloads: u32,
    /// Attempts in flight now.
    pub in_flight: u32,
}

impl Signals {
    /// The signals in `recent`.
    pub fn of(recent: &Outcomes, overload_kinds: &[ErrorKind]) -> Signals {
        Signals {
            successes: recent.successes,
            slow: if recent.successes > 0 {
                recent.slow_calls()
            } else {
                0
            },
            overloads: recent.failures_among(overload_kinds),
            in_flight: recent.in_flight(),
        }
    }

    fn is_empty(&self) -> bool {
        self.successes == 0 && self.overloads == 0
    }
}

/// A validated config, ready to adapt.
#[derive(Debug)]
pub struct Aimd {
    initial: f64,
    min: f64,
    max: f64,
    backoff_ratio: f64,
}

impl Aimd {
    /// Validate `config`.
    pub fn new(config: &Config) -> Result<Aimd, String> {
        config.validate()?;
        Ok(Aimd {
            initial: f64::from(config.initial_limit),
            min: f64::from(config.min_limit),
            max: f64::from(config.max_limit),
            backoff_ratio: config.backoff_ratio,
        })
    }

    /// The limit after one report's `signals`.
    pub fn next(&self, limit: f64, signals: &Signals) -> f64 {
        if signals.overloads > 0 || signals.slow > 0 {
            return (limit * self.backoff_ratio).max(self.min);
        }
        // The attempt being admitted counts as in flight too (Netflix counts
        // a request from its start): a limit of 1 in use can still grow.
        if (f64::from(signals.in_flight) + 1.0) * 2.0 >= limit {
            return (limit + f64::from(signals.successes)).min(self.max);
        }
        limit
    }

    /// Applies `signals` to the stored limit and returns the limit now.
    pub fn update(&self, store: &dyn Store, signals: &Signals) -> f64 {
        let mut stored = store.get(LIMIT);
        for _ in 0..MAX_RACES {
            let limit = self.parse(stored.as_deref());
            if signals.is_empty() {
                return limit;
            }
            let next = self.next(limit, signals);
            if next == limit {
                return limit;
            }
            if store.compare_and_swap(LIMIT, stored.as_deref(), &next.to_string(), None) {
                return next;
            }
            stored = store.get(LIMIT);
        }
        self.parse(stored.as_deref())
    }

    /// The stored limit; absent or unreadable means the initial one.
    fn parse(&self, stored: Option<&str>) -> f64 {
        stored
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|l| l.is_finite())
            .map_or(self.initial, |l| l.clamp(self.min, self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::MemoryStore;

    fn aimd() -> Aimd {
        let config: Config =
            serde_json::from_str(r#"{"initial-limit": 10, "max-limit": 12}"#).expect("config");
        Aimd::new(&config).unwrap()
    }

    fn signals(successes: u32, slow: u32, overloads: u32, in_flight: u32) -> Signals {
        Signals {
            successes,
            slow,
            overloads,
            in_flight,
        }
    }

    #[test]
    fn grows_by_one_per_success_only_while_the_limit_is_used() {
        let a = aimd();
        assert_eq!(a.next(10.0, &signals(1, 0, 0, 5)), 11.0);
        assert_eq!(a.next(10.0, &signals(3, 0, 0, 3)), 10.0, "under half used");
        assert_eq!(
            a.next(1.0, &signals(1, 0, 0, 0)),
            2.0,
            "one in use is all of 1"
        );
        assert_eq!(a.next(11.0, &signals(5, 0, 0, 11)), 12.0, "capped at max");
    }

    #[test]
    fn backs_off_on_overload_or_slow_success_down_to_min() {
        let a = aimd();
        assert_eq!(a.next(10.0, &signals(0, 0, 1, 10)), 9.0);
        assert_eq!(a.next(10.0, &signals(4, 1, 0, 10)), 9.0);
        assert_eq!(a.next(1.05, &signals(0, 0, 3, 0)), 1.0);
    }

    #[test]
    fn the_limit_lives_in_state() {
        let (a, store) = (aimd(), MemoryStore::new());
        assert_eq!(a.update(&store, &Signals::default()), 10.0);
        assert_eq!(a.update(&store, &signals(0, 0, 1, 3)), 9.0);
        assert_eq!(a.update(&store, &signals(1, 0, 0, 9)), 10.0);
        store.set(LIMIT, "garbage", None);
        assert_eq!(a.update(&store, &Signals::default()), 10.0);
        store.set(LIMIT, "1000", None);
        assert_eq!(a.update(&store, &Signals::default()), 12.0, "clamped");
    }
}
