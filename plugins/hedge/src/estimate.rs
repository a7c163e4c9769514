//! The `auto` delay: mean + k·σ of the service's recent latencies.
//!
//! The host hands each report's latencies as a delta (count, sum, sum of
//! squares since this plugin's last call for the service), so the totals
//! are kept in state, per service. Past `window` successes the old totals
//! are scaled down before the new ones are added: an exponential fade
//! that needs three numbers, not a list of samples.

use mender_guest::prelude::*;
use mender_guest::state::Store;

use crate::config::Config;

/// Where the totals live (state is already per plugin and service).
const KEY: &str = "latency";

/// The latency totals the estimate is made from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub count: f64,
    pub sum: f64,
    pub sum_of_squares: f64,
}

impl Totals {
    /// Adds a report, fading the old totals so at most `window` count.
    pub fn add(mut self, report: &LatencySummary, window: u32) -> Totals {
        let new = f64::from(report.count);
        let window = f64::from(window);
        if self.count + new > window && self.count > 0.0 {
            let keep = ((window - new) / self.count).max(0.0);
            self.count *= keep;
            self.sum *= keep;
            self.sum_of_squares *= keep;
        }
        self.count += new;
        self.sum += report.sum as f64;
        self.sum_of_squares += report.sum_of_squares as f64;
        self
    }

    /// Mean + k·σ, in ms; `None` before any success.
    pub fn quantile(&self, k: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let mean = self.sum / self.count;
        let variance = (self.sum_of_squares / self.count - mean * mean).max(0.0);
        Some(mean + k * variance.sqrt())
    }

    fn load(store: &impl Store) -> Totals {
        let Some(text) = store.get(KEY) else {
            return Totals::default();
        };
        let mut parts = text.split(' ').map(|p| p.parse::<f64>().ok());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Some(count)), Some(Some(sum)), Some(Some(sum_of_squares))) => Totals {
                count,
                sum,
                sum_of_squares,
            },
            // Unreadable (another version wrote it): start again.
            _ => Totals::default(),
        }
    }

    fn save(&self, store: &impl Store) {
        let text = format!("{} {} {}", self.count, self.sum, self.sum_of_squares);
        store.set(KEY, &text, None);
    }
}

/// The `auto` delay for a service after `report`, within the bounds;
/// `max-after` until a success is known.
pub fn auto_after(config: &Config, store: &impl Store, report: &LatencySummary) -> u64 {
    let mut totals = Totals::load(store);
    if report.count > 0 {
        totals = totals.add(report, config.window);
        totals.save(store);
    }
    let (lo, hi) = (config.min_after.get(), config.max_after.get());
    match totals.quantile(config.k) {
        Some(q) => (q.ceil() as u64).clamp(lo, hi),
        None => hi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::{MemoryStore, latency_summary as report};

    fn config(toml_k: f64) -> Config {
        let mut c: Config = mender_guest::config::parse("{}").unwrap();
        c.k = toml_k;
        c
    }

    #[test]
    fn mean_plus_k_sigma_within_bounds() {
        let store = MemoryStore::new();
        let c = config(2.0);
        // Mean 30, σ 10: 50.
        assert_eq!(auto_after(&c, &store, &report(&[20, 40, 20, 40])), 50);
        // The totals persist: an empty report keeps the estimate.
        assert_eq!(auto_after(&c, &store, &report(&[])), 50);
        // Fast answers pull it down to min-after (10 ms) at most.
        assert_eq!(auto_after(&c, &MemoryStore::new(), &report(&[1, 1, 1])), 10);
        // A slow service is hedged at max-after (1 s) at the latest.
        assert_eq!(
            auto_after(&c, &MemoryStore::new(), &report(&[5_000])),
            1_000
        );
    }

    #[test]
    fn before_any_success_it_waits_max_after() {
        let c = config(3.0);
        assert_eq!(auto_after(&c, &MemoryStore::new(), &report(&[])), 1_000);
    }

    #[test]
    fn old_latencies_fade_past_the_window() {
        let slow = Totals::default().add(&report(&[100; 10]), 10);
        let now_fast = slow.add(&report(&[10; 10]), 10);
        assert_eq!(now_fast.count, 10.0);
        assert_eq!(now_fast.quantile(0.0), Some(10.0), "the old ten are gone");
        let half = slow.add(&report(&[10; 5]), 10);
        assert_eq!(half.quantile(0.0), Some(55.0), "five old, five new");
    }

    #[test]
    fn unreadable_totals_start_again() {
        let store = MemoryStore::new();
        store.set(KEY, "not numbers", None);
        assert_eq!(Totals::load(&store), Totals::default());
    }
}
