//! When a plugin that keeps faulting is benched, as configured
//! (`quarantine-after`, `quarantine-window`, `quarantine-for`). The
//! bench itself is `plugin/quarantine.rs`.

use std::time::Duration;

/// When a plugin is quarantined and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinePolicy {
    /// Faults within `window` that quarantine the plugin (0: never).
    pub after: u32,
    /// The window faults are counted in.
    pub window: Duration,
    /// How long the plugin stays benched.
    pub cool_down: Duration,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            // Five faults: one is an accident, a few a coincidence, five in
            // a minute a broken plugin.
            after: 5,
            window: Duration::from_secs(60),
            // Thirty seconds: long enough to stop paying for a broken
            // plugin on every call, short enough that a transient cause
            // does not keep it out for long.
            cool_down: Duration::from_secs(30),
        }
    }
}
