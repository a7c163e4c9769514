//! The failover config, its defaults, and validation.

use mender_guest::prelude::*;
use serde::Deserialize;

/// The `[plugins.failover]` table of `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Eject an upstream after this many counted failures on it within
    /// `window`.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
    /// The window those failures are counted in.
    #[serde(default = "default_window")]
    pub window: Millis,
    /// The first ejection's length; the n-th in a row lasts n times this.
    #[serde(default = "default_eject_for")]
    pub eject_for: Millis,
    /// No ejection lasts longer than this.
    #[serde(default = "default_max_eject_for")]
    pub max_eject_for: Millis,
    /// The failure kinds that move the call to another upstream and count
    /// towards an ejection.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<ErrorKind>,
    /// The delay before the attempt on another upstream.
    #[serde(default)]
    pub delay: Millis,
    /// How long the host may reuse an admission (and its route) without
    /// asking; it ends at the first failure, and never outlasts an
    /// ejection. 0: ask before every attempt.
    #[serde(default = "default_lease")]
    pub lease: Millis,
}

// 3: one failure is routine noise, and it already moves its own call to
// the backup; three within the window mean the upstream is down for
// everyone, so later calls should skip it without paying for a failure.
fn default_eject_after() -> u32 {
    3
}

// 10s: failures further apart than this are not one outage.
fn default_window() -> Millis {
    Millis::from_secs(10)
}

// 30s, growing per ejection in a row up to 300s: Envoy's outlier
// detection defaults (`base_ejection_time`, `max_ejection_time`).
fn default_eject_for() -> Millis {
    Millis::from_secs(30)
}

fn default_max_eject_for() -> Millis {
    Millis::from_secs(300)
}

// Failures that say the upstream, not the request, is at fault: it could
// not be reached, did not answer in time, or broke (HTTP 500/502/507).
// Rate limits, auth and tool errors would follow the request to a backup.
fn default_kinds() -> Vec<ErrorKind> {
    vec![ErrorKind::Connect, ErrorKind::Timeout, ErrorKind::Resource]
}

// 1s: successes cost one Wasm call a second at most, and a lease that
// routes to a backup is asked again within a second of the ejection's end.
fn default_lease() -> Millis {
    Millis::from_secs(1)
}

impl Config {
    /// Refuses settings that cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.eject_after == 0 {
            return Err("`eject-after` must be at least 1".into());
        }
        if self.window.get() == 0 {
            return Err("`window` must be longer than 0".into());
        }
        if self.eject_for.get() == 0 {
            return Err("`eject-for` must be longer than 0".into());
        }
        if self.max_eject_for < self.eject_for {
            return Err(format!(
                "`max-eject-for` ({}) is shorter than `eject-for` ({})",
                self.max_eject_for, self.eject_for
            ));
        }
        if self.kinds.is_empty() {
            return Err("`kinds` is empty: no failure would ever fail over".into());
        }
        Ok(())
    }
}
