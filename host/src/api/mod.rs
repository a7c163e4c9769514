//! What a caller gives ([`CallSpec`], the attempt closure) and gets back
//! ([`Reply`] or [`CallError`], both with the attempt history).

mod credentials;
mod give_up;

pub use credentials::{BoxFuture, CredentialProvider};
pub use give_up::{GiveUp, PluginFault};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::failure::ErrorKind;

/// Describes a call: which service and operation, and how to treat it.
#[derive(Clone, Debug)]
pub struct CallSpec {
    pub(crate) service: Cow<'static, str>,
    pub(crate) operation: Cow<'static, str>,
    pub(crate) idempotent: bool,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) result_key: Option<String>,
    /// Routing: the upstreams an attempt may go to, first the default.
    /// Shared, so each hook that reads them costs no copy.
    pub(crate) upstreams: Option<Arc<[String]>>,
}

impl CallSpec {
    /// A call of `operation` on `service`; not idempotent until said so.
    pub fn new(
        service: impl Into<Cow<'static, str>>,
        operation: impl Into<Cow<'static, str>>,
    ) -> Self {
        CallSpec {
            service: service.into(),
            operation: operation.into(),
            idempotent: false,
            tags: Vec::new(),
            deadline: None,
            attempt_timeout: None,
            result_key: None,
            upstreams: None,
        }
    }

    /// Whether the operation is safe to repeat (reads, idempotent writes).
    /// Non-idempotent operations are never retried unless the service's
    /// guardrails say `retry-non-idempotent = true`.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// A key/value pair plugins see in every event of this call.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// This call's overall deadline (replaces the service's).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// This call's per-attempt timeout (the smaller of this and the
    /// service's applies).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// Distinguishes recorded results of the same operation (e.g. a hash of
    /// the arguments), so a cached fallback serves the answer to the same
    /// question. Defaults to the operation alone. Only idempotent calls'
    /// results are recorded.
    pub fn result_key(mut self, key: impl Into<String>) -> Self {
        self.result_key = Some(key.into());
        self
    }

    /// Routing: the upstreams this call may use (replicas, or a primary
    /// and its backups), the first being where attempts go unless a
    /// strategy routes them elsewhere (contract 0.2's `retry-on`, or a
    /// grant's `upstream`). Each attempt is told which one it must use
    /// ([`Attempt::upstream`], an index into this list), and the history
    /// records it ([`AttemptRecord::upstream`]). An empty list is none.
    pub fn upstreams<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        self.upstreams = (!names.is_empty()).then(|| Arc::from(names));
        self
    }

    /// The upstreams given by [`upstreams`](Self::upstreams) (empty: none).
    pub fn upstream_names(&self) -> &[String] {
        self.upstreams.as_deref().unwrap_or_default()
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The operation.
    pub fn operation(&self) -> &str {
        &self.operation
    }
}

/// Handed to the attempt closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Which attempt this is, from 1.
    pub number: u32,
    /// When the host will cancel this attempt, if it will.
    pub timeout: Option<Duration>,
    /// Routing: which of the call's upstreams this attempt must use, as
    /// an index into [`CallSpec::upstreams`] (0 unless a strategy routed
    /// it); `None` when the call names no upstreams.
    pub upstream: Option<u32>,
}

/// A call's result type: how mender records it (for cached fallbacks) and
/// decodes a fallback answer into it.
pub trait Payload: Sized {
    /// Text to record for a cached fallback; `None` records nothing.
    fn encode(&self) -> Option<String>;
    /// The value a fallback answer stands for.
    fn decode(body: &str) -> Result<Self, String>;
}

impl Payload for String {
    fn encode(&self) -> Option<String> {
        Some(self.clone())
    }
    fn decode(body: &str) -> Result<Self, String> {
        Ok(body.to_owned())
    }
}

impl Payload for serde_json::Value {
    fn encode(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn decode(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}

impl Payload for () {
    fn encode(&self) -> Option<String> {
        None
    }
    fn decode(_: &str) -> Result<Self, String> {
        Ok(())
    }
}

/// Any serde type, carried as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize + serde::de::DeserializeOwned> Payload for Json<T> {
    fn encode(&self) -> Option<String> {
        serde_json::to_string(&self.0).ok()
    }
    fn decode(body: &str) -> Result<Self, String> {
        serde_json::from_str(body)
            .map(Json)
            .map_err(|e| e.to_string())
    }
}

/// Where a reply's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServedBy {
    /// The upstream answered.
    Upstream,
    /// A plugin answered instead.
    Fallback {
        /// The plugin that answered.
        plugin: String,
        /// How old the answer is, if it is a recorded past result.
        age: Option<Duration>,
    },
}

/// A call's value, with how it was obtained.
#[derive(Clone, Debug)]
pub struct Reply<T> {
    /// The value.
    pub value: T,
    /// Upstream or fallback.
    pub served_by: ServedBy,
    /// Every failed attempt before the answer (empty on first-try success).
    pub history: Vec<AttemptRecord>,
}

impl<T> Reply<T> {
    /// Whether a fallback answered.
    pub fn is_fallback(&self) -> bool {
        matches!(self.served_by, ServedBy::Fallback { .. })
    }
}

/// One failed attempt and what was done about it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it started, from the call's start.
    pub started: Duration,
    /// How long it ran (zero if it was rejected before starting).
    pub took: Duration,
    /// The failure's class.
    pub kind: ErrorKind,
    /// The failure's text, redacted.
    pub message: String,
    /// HTTP status or JSON-RPC code, if any.
    pub status: Option<i32>,
    /// Routing: the upstream the attempt used (a name from
    /// [`CallSpec::upstreams`]); `None` when the call names none.
    pub upstream: Option<String>,
    /// The failure's own tags (`session-expired`, …; not the call's),
    /// redacted.
    pub tags: Vec<(String, String)>,
    /// What happened next.
    pub step: Step,
}

/// What the pipeline did after a failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Waited, then tried again.
    Retry {
        /// The plugin that decided.
        by: String,
        /// How long the host waited (after guardrail clamping).
        delay: Duration,
    },
    /// Refreshed credentials, then tried again.
    RefreshCredentials {
        /// The plugin that decided.
        by: String,
    },
    /// Answered with a fallback.
    Fallback {
        /// The plugin that answered.
        by: String,
    },
    /// Ended the call with a failure.
    Fail {
        /// Why, as text (`cause`'s `Display`).
        reason: String,
        /// Why, as a type.
        cause: GiveUp,
    },
    /// Failed while another attempt of the call (a hedge) was still
    /// running: counted, but not handed to the strategies; the failure
    /// that leaves no attempt running is.
    Hedged,
    /// Still running when attempt `answered` (a hedge race) answered
    /// first: dropped at once. Its `kind` is `cancelled`.
    Cancelled {
        /// The attempt whose answer the call returned.
        answered: u32,
    },
}

/// A call that failed for good.
#[derive(Debug, thiserror::Error)]
#[error("{service}/{operation} failed after {} attempt(s): {reason}", history.len())]
pub struct CallError<E> {
    /// The service.
    pub service: String,
    /// The operation.
    pub operation: String,
    /// Why the call ended (which plugin or guardrail ended it), as text:
    /// `cause`'s `Display`.
    pub reason: String,
    /// Why the call ended, as a type to match on.
    pub cause: GiveUp,
    /// The class of the last failure.
    pub kind: ErrorKind,
    /// The last error the upstream returned, if the last attempt reached it.
    pub last_error: Option<E>,
    /// Every attempt.
    pub history: Vec<AttemptRecord>,
}
