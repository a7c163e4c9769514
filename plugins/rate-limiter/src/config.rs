//! The limiter's config, its defaults, and validation.

use mender_guest::prelude::*;
use serde::Deserialize;

/// The plugin's `config` table in `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Attempts allowed per `per`, on average.
    pub rate: u32,
    /// The period `rate` is counted over.
    #[serde(default = "default_per")]
    pub per: Millis,
    /// Attempts that may start at once after a quiet spell; default `rate`.
    #[serde(default)]
    pub burst: Option<u32>,
    /// An attempt that would be allowed within this long waits for it; one
    /// that would wait longer is rejected (with `retry-after`). `0`: never
    /// wait.
    #[serde(default = "default_max_wait")]
    pub max_wait: Millis,
    /// Pause the service when a failure carries the upstream's hint
    /// (`retry-after`, or a `ratelimit-reset` tag in seconds).
    #[serde(default = "default_honor_hints")]
    pub honor_hints: bool,
    /// Slots one plugin call may take at once; the host admits the rest of
    /// them itself (a lease), without a Wasm call. 1: every attempt asks.
    #[serde(default = "default_lease")]
    pub lease: u32,
}

// 1: every attempt asks, so a fleet shares the rate slot by slot. A larger
// lease makes the happy path free of Wasm calls at the price of slots one
// process may hold and not use.
fn default_lease() -> u32 {
    1
}

// 1s: rate limits are most often stated per second.
fn default_per() -> Millis {
    Millis::from_secs(1)
}

// 1s: a short wait costs an agent step less than a rejection and a retry,
// and is still well inside the default 120 s call deadline.
fn default_max_wait() -> Millis {
    Millis::from_secs(1)
}

// On: an upstream that says when to come back knows better than any local
// estimate.
fn default_honor_hints() -> bool {
    true
}
