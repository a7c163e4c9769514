//! The admission's answer in the host's vocabulary: 0.1's `admission`
//! and `grant`, plus what later contracts add to a grant (0.2: a hedge).
//! A 0.1 plugin's grant converts with the additions absent, so it means
//! what it meant.

use super::v0_1::strategy::mender::plugin::types as v1;

/// An admission hook's answer.
#[derive(Clone, Debug)]
pub enum Admission {
    /// The attempt may start.
    Allow(Grant),
    /// The attempt must not start.
    Reject(v1::Rejection),
    /// Wait this many milliseconds, then ask again.
    Wait(u64),
}

/// Permission for an attempt to start.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    /// This attempt's timeout, in milliseconds.
    pub attempt_timeout: Option<u64>,
    /// Reuse this answer while the lease holds.
    pub lease: Option<v1::Lease>,
    /// Hedge the attempt (0.2); `None` from a 0.1 plugin.
    pub hedge: Option<Hedge>,
}

/// Start another attempt of the call if this one has not answered after
/// `after` ms, at most `max` more (contract 0.2's `hedge`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hedge {
    /// Milliseconds an attempt may run before the next one starts.
    pub after: u64,
    /// Extra attempts at most.
    pub max: u32,
}

/// A 0.1 plugin's answer: no hedge.
impl From<v1::Admission> for Admission {
    fn from(a: v1::Admission) -> Self {
        match a {
            v1::Admission::Allow(g) => Admission::Allow(Grant {
                attempt_timeout: g.attempt_timeout,
                lease: g.lease,
                hedge: None,
            }),
            v1::Admission::Reject(r) => Admission::Reject(r),
            v1::Admission::Wait(ms) => Admission::Wait(ms),
        }
    }
}
