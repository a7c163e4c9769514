//! The estimate: mean and standard deviation of recent successful
//! latencies, from the count, sum and sum of squares the host reports
//! (contract 0.2's `current.latency()`), with older successes weighing
//! less: every `half-life` a success's weight halves.
//!
//! State key (scoped by the host to this plugin and the service):
//! `moments`, four numbers `n sum sum-of-squares at`: the weighted count,
//! sum and sum of squares, as of host time `at`. Written only when a
//! report brings successes, with a compare-and-swap, so concurrent
//! instances (and processes, on Redis) each add their report once.

use mender_guest::prelude::*;
use mender_guest::state::Store;

use crate::config::Config;

/// The key holding the weighted moments.
const MOMENTS: &str = "moments";

/// How many times a report is re-added after losing a race.
const MAX_RACES: usize = 3;

/// Weighted count, sum and sum of squares of latencies, as of `at`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub sum: f64,
    pub sum_sq: f64,
    pub at: u64,
}

impl Moments {
    fn parse(text: &str) -> Option<Moments> {
        let mut parts = text.split(' ');
        let mut next = || parts.next()?.parse::<f64>().ok().filter(|x| x.is_finite());
        let (n, sum, sum_sq, at) = (next()?, next()?, next()?, next()?);
        Some(Moments {
            n,
            sum,
            sum_sq,
            at: at as u64,
        })
    }

    fn encode(&self) -> String {
        format!("{} {} {} {}", self.n, self.sum, self.sum_sq, self.at)
    }

    /// These moments aged to `now` and with `l` added.
    fn add(self, l: &LatencySummary, now: u64, half_life: u64) -> Moments {
        let age = now.saturating_sub(self.at) as f64;
        let weight = 0.5f64.powf(age / half_life as f64);
        Moments {
            n: self.n * weight + f64::from(l.count),
            sum: self.sum * weight + l.sum as f64,
            sum_sq: self.sum_sq * weight + l.sum_of_squares as f64,
            at: now.max(self.at),
        }
    }

    /// Mean and standard deviation, in ms.
    pub fn mean_and_std_dev(&self) -> (f64, f64) {
        if self.n <= 0.0 {
            return (0.0, 0.0);
        }
        let mean = self.sum / self.n;
        let variance = (self.sum_sq / self.n - mean * mean).max(0.0);
        (mean, variance.sqrt())
    }
}

/// A validated config, ready to estimate.
#[derive(Debug)]
pub struct Estimator {
    initial: u64,
    min: u64,
    max: u64,
    sigmas: f64,
    min_samples: f64,
    half_life: u64,
}

impl Estimator {
    /// Validate `config`.
    pub fn new(config: &Config) -> Result<Estimator, String> {
        config.validate()?;
        Ok(Estimator {
            initial: config.initial.get(),
            min: config.min.get(),
            max: config.max.get(),
            sigmas: config.sigmas,
            min_samples: f64::from(config.min_samples),
            half_life: config.half_life.get(),
        })
    }

    /// Adds the report `latency` at `now` and answers the timeout.
    pub fn update(&self, store: &dyn Store, now: u64, latency: &LatencySummary) -> u64 {
        let mut stored = store.get(MOMENTS);
        for _ in 0..MAX_RACES {
            let before = stored
                .as_deref()
                .and_then(Moments::parse)
                .unwrap_or(Moments {
                    at: now,
                    ..Moments::default()
                });
            if latency.count == 0 {
                return self.timeout(&before);
            }
            let after = before.add(latency, now, self.half_life);
            if store.compare_and_swap(MOMENTS, stored.as_deref(), &after.encode(), None) {
                return self.timeout(&after);
            }
            stored = store.get(MOMENTS);
        }
        let latest = stored.as_deref().and_then(Moments::parse);
        latest.map_or(self.initial, |m| self.timeout(&m))
    }

    /// Mean + `sigmas` standard deviations, within `min..=max`; `initial`
    /// until `min-samples` successes weigh in.
    pub fn timeout(&self, m: &Moments) -> u64 {
        if m.n < self.min_samples {
            return self.initial;
        }
        let (mean, sd) = m.mean_and_std_dev();
        let t = (mean + self.sigmas * sd).ceil();
        (t as u64).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::{MemoryStore, latency_summary as summary};

    fn estimator(json: &str) -> Estimator {
        Estimator::new(&serde_json::from_str(json).expect("config")).unwrap()
    }

    #[test]
    fn initial_until_enough_samples_then_mean_plus_three_sigma() {
        let e = estimator(r#"{"initial": "5s", "min-samples": 4}"#);
        let store = MemoryStore::new();
        assert_eq!(e.update(&store, 0, &summary(&[100, 100, 100])), 5_000);
        // 100,100,100,300: mean 150, sd sqrt(7500) = 86.6 -> 150 + 259.8.
        assert_eq!(e.update(&store, 0, &summary(&[300])), 410);
        assert_eq!(e.update(&store, 0, &summary(&[])), 410, "no news, same");
    }

    #[test]
    fn bounded_by_min_and_max() {
        let e = estimator(r#"{"min": "200ms", "max": "1s", "initial": "500ms", "min-samples": 2}"#);
        let store = MemoryStore::new();
        assert_eq!(e.update(&store, 0, &summary(&[10, 10])), 200);
        let slow = estimator(r#"{"max": "1s", "initial": "500ms", "min-samples": 2}"#);
        assert_eq!(
            slow.update(&MemoryStore::new(), 0, &summary(&[5_000, 9_000])),
            1_000
        );
    }

    #[test]
    fn old_successes_weigh_less() {
        let e = estimator(r#"{"half-life": "10s", "min-samples": 2, "sigmas": 0}"#);
        let store = MemoryStore::new();
        e.update(&store, 0, &summary(&[100, 100]));
        // 10 s later the two old ones weigh one: (100 + 400) / 2.
        assert_eq!(e.update(&store, 10_000, &summary(&[400])), 250);
    }

    #[test]
    fn unreadable_state_starts_over() {
        let e = estimator(r#"{"initial": "3s"}"#);
        let store = MemoryStore::new();
        store.set(MOMENTS, "not numbers", None);
        assert_eq!(e.update(&store, 0, &summary(&[])), 3_000);
    }
}
