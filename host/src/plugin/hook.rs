//! When a hook call starts: what every hook is handed besides its
//! arguments.

use std::time::Duration;

/// When a hook call starts, and the time its call has left (`budget`,
/// `None` without a deadline). One clock reading serves the quarantine
/// check, the plugin's host time, the deadline and the call info; with
/// the real-time start of the plugin's clock (`Pool::call`) and the
/// hook's duration, a hook reads the clock three times. It read it eight
/// times, at about 25 ns each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HookStart {
    pub(crate) at: tokio::time::Instant,
    pub(crate) budget: Option<Duration>,
}

impl HookStart {
    /// Starts now, for a hook with no call deadline (the smoke check and
    /// the conformance kit).
    pub(crate) fn unbounded() -> Self {
        HookStart {
            at: tokio::time::Instant::now(),
            budget: None,
        }
    }
}
