//! Why a call ended without an answer, as a type: [`GiveUp`] is the cause
//! in a [`CallError`](super::CallError) and in a history's
//! [`Step::Fail`](super::Step::Fail), so a caller can match on it; its
//! `Display` is the text the `reason` fields carry.

use crate::config::RetryRefusal;
use crate::failure::ErrorKind;

/// Why a plugin could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` {reason}")]
pub struct PluginFault {
    /// The plugin's name.
    pub plugin: String,
    /// What went wrong, for people.
    pub reason: String,
    /// The call's deadline, not the plugin's own limit, stopped it: the
    /// call is out of time, and the plugin is not to blame (no quarantine).
    pub(crate) cut_off: bool,
}

/// Why the pipeline gave up on a call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// A strategy answered `fail`.
    Strategy {
        /// The strategy.
        plugin: String,
        /// What it said.
        reason: String,
    },
    /// A plugin faulted and is configured `on-fault = "fail-closed"`.
    PluginFault(PluginFault),
    /// Every strategy with an `on-error` hook passed.
    NoRetry {
        /// The last failure's kind.
        kind: ErrorKind,
    },
    /// The service has no strategy with an `on-error` hook.
    NoStrategy {
        /// The last failure's kind.
        kind: ErrorKind,
    },
    /// A strategy asked to retry; a guardrail (or the retry budget) refused.
    RetryRefused {
        /// The strategy.
        plugin: String,
        /// Which guardrail, and why.
        refusal: RetryRefusal,
    },
    /// A strategy asked to refresh credentials; a guardrail refused.
    RefreshRefused {
        /// The strategy.
        plugin: String,
        /// Which guardrail, and why.
        refusal: RetryRefusal,
    },
    /// A strategy asked to refresh credentials more often than
    /// `max-credential-refreshes` allows.
    RefreshLimit {
        /// The strategy.
        plugin: String,
        /// The limit.
        max: u32,
    },
    /// A strategy asked to refresh credentials, but the embedder registered
    /// no provider for the service.
    NoCredentialProvider {
        /// The strategy.
        plugin: String,
        /// The service.
        service: String,
    },
    /// The credential provider failed (its message, redacted).
    RefreshFailed {
        /// What the provider said.
        message: String,
    },
    /// A fallback's answer does not decode into the call's type.
    FallbackUndecodable {
        /// The plugin that answered.
        plugin: String,
        /// The decoder's complaint.
        error: String,
    },
    /// The strategies gave up, then a fail-closed fallback handler faulted.
    FallbackFault {
        /// Why the strategies gave up.
        first: Box<GiveUp>,
        /// The fallback handler's fault.
        fault: PluginFault,
    },
}

impl GiveUp {
    /// Whether the reason quotes text the host did not write (a plugin's
    /// reason or fault, a decoder's complaint, a credential provider's
    /// message), which must pass the redactor before it is kept.
    pub(crate) fn quotes_others(&self) -> bool {
        match self {
            GiveUp::Strategy { .. }
            | GiveUp::PluginFault(_)
            | GiveUp::RefreshFailed { .. }
            | GiveUp::FallbackUndecodable { .. }
            | GiveUp::FallbackFault { .. } => true,
            GiveUp::NoRetry { .. }
            | GiveUp::NoStrategy { .. }
            | GiveUp::RetryRefused { .. }
            | GiveUp::RefreshRefused { .. }
            | GiveUp::RefreshLimit { .. }
            | GiveUp::NoCredentialProvider { .. } => false,
        }
    }

    /// The plugin whose answer (or fault) ended the call, if one did.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            GiveUp::Strategy { plugin, .. }
            | GiveUp::RetryRefused { plugin, .. }
            | GiveUp::RefreshRefused { plugin, .. }
            | GiveUp::RefreshLimit { plugin, .. }
            | GiveUp::NoCredentialProvider { plugin, .. }
            | GiveUp::FallbackUndecodable { plugin, .. } => Some(plugin),
            GiveUp::PluginFault(fault) | GiveUp::FallbackFault { fault, .. } => Some(&fault.plugin),
            GiveUp::NoRetry { .. } | GiveUp::NoStrategy { .. } | GiveUp::RefreshFailed { .. } => {
                None
            }
        }
    }
}

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GiveUp::Strategy { plugin, reason } => write!(f, "{plugin}: {reason}"),
            GiveUp::PluginFault(fault) => write!(f, "{fault}"),
            GiveUp::NoRetry { kind } => write!(f, "no strategy chose to retry ({kind})"),
            GiveUp::NoStrategy { kind } => write!(
                f,
                "no strategy with an on-error hook is configured for this service ({kind})"
            ),
            GiveUp::RetryRefused { plugin, refusal } => {
                write!(f, "{plugin} asked to retry; guardrail: {refusal}")
            }
            GiveUp::RefreshRefused { plugin, refusal } => {
                write!(
                    f,
                    "{plugin} asked to refresh credentials; guardrail: {refusal}"
                )
            }
            GiveUp::RefreshLimit { plugin, max } => write!(
                f,
                "{plugin} asked to refresh credentials; guardrail: max-credential-refreshes ({max}) reached"
            ),
            GiveUp::NoCredentialProvider { plugin, service } => write!(
                f,
                "{plugin} asked to refresh credentials, but no credential provider is registered for `{service}`"
            ),
            GiveUp::RefreshFailed { message } => write!(f, "credential refresh failed: {message}"),
            GiveUp::FallbackUndecodable { plugin, error } => {
                write!(f, "fallback from {plugin} could not be decoded: {error}")
            }
            GiveUp::FallbackFault { first, fault } => write!(f, "{first}; then {fault}"),
        }
    }
}
