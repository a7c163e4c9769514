//! When a hook call starts: what every hook is handed besides its
//! arguments.

use std::time::Duration;

/// When a hook call starts, and the time its call has left (`budget`,
/// `None` without a deadline). One clock reading serves everything the
/// hook needs the time for (the quarantine check, the plugin's clock, its
/// deadline, how long it took): a hook used to read the clock eight
/// times, at about 25 ns each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HookStart {
    pub(crate) at: tokio::time::Instant,
    pub(crate) budget: Option<Duration>,
}

impl HookStart {
    /// Starts now, with `budget` left.
    pub(crate) fn now(budget: Option<Duration>) -> Self {
        HookStart {
            at: tokio::time::Instant::now(),
            budget,
        }
    }
}
