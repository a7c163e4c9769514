//! Host bindings generated from `wit/`, one module per contract version
//! (`v0_1`, `v0_2`), each with one module per world.
//!
//! The host links every version it supports side by side, as Zed's
//! extension host does (`wit/since_vX.Y.Z/`). Internally it speaks one
//! vocabulary, [`wit`]: the 0.1 records, which carry every field any
//! version passes (0.2's hooks take a scalar subset and read the rest on
//! demand), except the admission's answer, whose grant 0.2 extends (a
//! hedge): that one is the host's own ([`grant`]). Each version converts
//! between that vocabulary and its own types, so the call path is written
//! once for all versions.
//!
//! Every import is synchronous (no `async` flag): plugin hooks run for
//! microseconds, inline on the calling task. Host functions that enforce a
//! limit are `trappable`, so exceeding the limit stops the plugin call
//! instead of silently truncating.

#![allow(missing_docs)]

pub(crate) mod grant;
pub(crate) mod v0_1;
pub(crate) mod v0_2;

/// The host's vocabulary (see the module doc).
pub mod wit {
    pub use super::grant::{Admission, Grant, Hedge};
    pub use super::v0_1::strategy::mender::plugin::types::{
        CallInfo, Decision, ErrorEvent, ErrorKind, FallbackAnswer, HandlerInfo, Hooks, Lease,
        Outcomes, RecordedResult, Rejection, StrategyInfo,
    };
}

/// An answer in the host's vocabulary, with the upstream contract 0.2's
/// routing sends the attempt to: a `retry-on`'s (beside a `retry`
/// decision) or a grant's `upstream` (beside an `allow`). 0.1 has no
/// routing, so 0.1 answers carry `None`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Routed<T> {
    pub(crate) answer: T,
    /// An index into the call's upstreams ([`Upstreams`]).
    pub(crate) upstream: Option<u32>,
}

impl<T> From<T> for Routed<T> {
    fn from(answer: T) -> Self {
        Routed {
            answer,
            upstream: None,
        }
    }
}

/// A call's alternative upstreams, and the index of the one the attempt a
/// hook is about uses: 0.2's `current.upstreams()` and
/// `current.upstream()`. Both empty for a call that names none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Upstreams {
    /// Shared with the call's spec: handing them to a hook copies no string.
    pub(crate) names: Option<std::sync::Arc<[String]>>,
    pub(crate) used: Option<u32>,
}

impl Upstreams {
    /// Holds a 0.2 answer's route (`what` it routes: "the retry", "the
    /// attempt") against these upstreams: dropped when there are none
    /// (the contract makes it a plain `retry` or `allow`); an index past
    /// the list is `Err`, why said for people with the index and the list
    /// (the plugin's fault).
    pub(crate) fn hold<T>(&self, what: &str, mut routed: Routed<T>) -> Result<Routed<T>, String> {
        let Some(index) = routed.upstream else {
            return Ok(routed);
        };
        let names = self.names.as_deref().unwrap_or_default();
        if names.is_empty() {
            routed.upstream = None;
            return Ok(routed);
        }
        if usize::try_from(index).is_ok_and(|i| i < names.len()) {
            return Ok(routed);
        }
        Err(format!(
            "routed {what} to upstream {index}, but the call's upstreams are {names:?} (indices 0 to {})",
            names.len() - 1
        ))
    }
}

// The host's `ErrorKind` and the WIT `error-kind` are the same ten cases;
// the mapping lives here, with the bindings, so the host's failure types
// need not know about Wasm.
use crate::failure::ErrorKind;

impl From<ErrorKind> for wit::ErrorKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Connect => wit::ErrorKind::Connect,
            ErrorKind::Timeout => wit::ErrorKind::Timeout,
            ErrorKind::RateLimited => wit::ErrorKind::RateLimited,
            ErrorKind::Auth => wit::ErrorKind::Auth,
            ErrorKind::Tool => wit::ErrorKind::Tool,
            ErrorKind::Protocol => wit::ErrorKind::Protocol,
            ErrorKind::Resource => wit::ErrorKind::Resource,
            ErrorKind::Cancelled => wit::ErrorKind::Cancelled,
            ErrorKind::Rejected => wit::ErrorKind::Rejected,
            ErrorKind::Unknown => wit::ErrorKind::Unknown,
        }
    }
}

impl From<wit::ErrorKind> for ErrorKind {
    fn from(k: wit::ErrorKind) -> Self {
        match k {
            wit::ErrorKind::Connect => ErrorKind::Connect,
            wit::ErrorKind::Timeout => ErrorKind::Timeout,
            wit::ErrorKind::RateLimited => ErrorKind::RateLimited,
            wit::ErrorKind::Auth => ErrorKind::Auth,
            wit::ErrorKind::Tool => ErrorKind::Tool,
            wit::ErrorKind::Protocol => ErrorKind::Protocol,
            wit::ErrorKind::Resource => ErrorKind::Resource,
            wit::ErrorKind::Cancelled => ErrorKind::Cancelled,
            wit::ErrorKind::Rejected => ErrorKind::Rejected,
            wit::ErrorKind::Unknown => ErrorKind::Unknown,
        }
    }
}
