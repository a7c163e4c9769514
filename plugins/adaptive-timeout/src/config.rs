//! The adaptive timeout's config, its defaults, and validation.

use mender_guest::prelude::*;
use serde::Deserialize;

/// The plugin's `config` table in `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The timeout until `min-samples` successes have been measured.
    #[serde(default = "default_initial")]
    pub initial: Millis,
    /// The timeout never falls below this.
    #[serde(default = "default_min")]
    pub min: Millis,
    /// The timeout never rises above this.
    #[serde(default = "default_max")]
    pub max: Millis,
    /// The timeout is the mean plus this many standard deviations.
    #[serde(default = "default_sigmas")]
    pub sigmas: f64,
    /// Successes (weighted by age) needed before the estimate is used.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// A success's weight halves every `half-life`: how fast the estimate
    /// forgets.
    #[serde(default = "default_half_life")]
    pub half_life: Millis,
    /// How long the host may reuse a timeout without asking; 0: ask before
    /// every attempt.
    #[serde(default = "default_lease")]
    pub lease: Millis,
}

// 10s: a generous first guess for a tool call; it only holds until the
// first `min-samples` successes.
fn default_initial() -> Millis {
    Millis::from_secs(10)
}

// 50ms: below this a timeout would cut off normal network jitter.
fn default_min() -> Millis {
    Millis::from_millis(50)
}

// 60s: the longest any single attempt of an agent's call should wait.
fn default_max() -> Millis {
    Millis::from_secs(60)
}

// 3 sigmas: for a roughly normal latency, 99.87% of healthy calls finish
// inside it, so a timeout almost always means a stuck call.
fn default_sigmas() -> f64 {
    3.0
}

// 10: with fewer, the standard deviation is mostly noise.
fn default_min_samples() -> u32 {
    10
}

// 60s: the estimate follows a service that slows down within a minute or
// two, yet one slow burst does not swing it.
fn default_half_life() -> Millis {
    Millis::from_secs(60)
}

// 1s: one Wasm call per second per service at most, while the estimate
// still moves every second.
fn default_lease() -> Millis {
    Millis::from_secs(1)
}

impl Config {
    /// Checks the values together; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.min.get() == 0 {
            return Err("min must be more than 0ms".into());
        }
        if self.max < self.min {
            return Err(format!("max ({}) is below min ({})", self.max, self.min));
        }
        if self.initial < self.min || self.initial > self.max {
            return Err(format!(
                "initial ({}) must be within min..=max ({}..={})",
                self.initial, self.min, self.max
            ));
        }
        if !(self.sigmas.is_finite() && self.sigmas >= 0.0) {
            return Err(format!("sigmas must be a number >= 0, got {}", self.sigmas));
        }
        if self.min_samples < 2 {
            return Err("min-samples must be at least 2 (a deviation needs two)".into());
        }
        if self.half_life.get() == 0 {
            return Err("half-life must be more than 0ms".into());
        }
        Ok(())
    }
}
