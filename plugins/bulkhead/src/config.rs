//! The bulkhead's config, its defaults, and validation.

use mender_guest::prelude::*;
use serde::Deserialize;

/// What an attempt over the limit gets.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Refused at once (kind `rejected`; the strategies after it decide).
    Reject,
    /// Asked again after `wait` (the host gives up after 16 waits or at
    /// the deadline).
    Wait,
}

/// The plugin's `config` table in `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The limit before anything is learned.
    #[serde(default = "default_initial_limit")]
    pub initial_limit: u32,
    /// The limit never falls below this.
    #[serde(default = "default_min_limit")]
    pub min_limit: u32,
    /// The limit never rises above this (the host's `max-in-flight`, if
    /// set, caps attempts whatever the limit).
    #[serde(default = "default_max_limit")]
    pub max_limit: u32,
    /// On a sign of overload the limit is multiplied by this.
    #[serde(default = "default_backoff_ratio")]
    pub backoff_ratio: f64,
    /// A success slower than this is a sign of overload, like a timeout.
    #[serde(default = "default_latency_target")]
    pub latency_target: Millis,
    /// Failures that are a sign of overload.
    #[serde(default = "default_overload_kinds")]
    pub overload_kinds: Vec<ErrorKind>,
    /// `reject` (default) or `wait` when the limit is reached.
    #[serde(default = "default_when_full")]
    pub when_full: WhenFull,
    /// With `when-full = "wait"`: how long before asking again.
    #[serde(default = "default_wait")]
    pub wait: Millis,
}

// 20: Netflix's concurrency-limits starts its AIMD limit at 20, enough for
// an agent's fan-out and far below what would swamp a small service.
fn default_initial_limit() -> u32 {
    20
}

// 1: a service must always be allowed one attempt, or it could never
// show that it recovered.
fn default_min_limit() -> u32 {
    1
}

// 200: Netflix's default maximum; above that a client-side limit protects
// nothing an upstream's own limits do not.
fn default_max_limit() -> u32 {
    200
}

// 0.9: Netflix's AIMD default; a tenth off per sign of overload backs off
// within a few reports without collapsing on one slow call.
fn default_backoff_ratio() -> f64 {
    0.9
}

// 2s: slower than an interactive tool call should ever be; set it near
// the service's normal latency for it to react earlier.
fn default_latency_target() -> Millis {
    Millis::from_secs(2)
}

// What an overloaded service answers: timeouts, rate limiting and
// resource exhaustion. Auth, tool and protocol errors say nothing of load.
fn default_overload_kinds() -> Vec<ErrorKind> {
    vec![
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Resource,
    ]
}

fn default_when_full() -> WhenFull {
    WhenFull::Reject
}

// 10ms: about one attempt's completion at agent call rates, so a waiter
// asks again soon after a slot is likely free.
fn default_wait() -> Millis {
    Millis::from_millis(10)
}

impl Config {
    /// Checks the values together; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_limit == 0 {
            return Err("min-limit must be at least 1".into());
        }
        if self.max_limit < self.min_limit {
            return Err(format!(
                "max-limit ({}) is below min-limit ({})",
                self.max_limit, self.min_limit
            ));
        }
        if !(self.min_limit..=self.max_limit).contains(&self.initial_limit) {
            return Err(format!(
                "initial-limit ({}) must be within min-limit..=max-limit ({}..={})",
                self.initial_limit, self.min_limit, self.max_limit
            ));
        }
        if !(0.5..1.0).contains(&self.backoff_ratio) {
            return Err(format!(
                "backoff-ratio must be in [0.5, 1), got {}",
                self.backoff_ratio
            ));
        }
        if self.latency_target.get() == 0 {
            return Err("latency-target must be more than 0ms".into());
        }
        if self.when_full == WhenFull::Wait && self.wait.get() == 0 {
            return Err("wait must be more than 0ms with when-full = \"wait\"".into());
        }
        Ok(())
    }
}
