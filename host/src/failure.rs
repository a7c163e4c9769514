//! Failures as the host sees them: [`ErrorKind`], [`Failure`], and the
//! [`Classify`] trait that turns a caller's error into a failure.

use std::time::Duration;

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};

/// The class of a failure; mirrors the WIT `error-kind`, where each case is
/// documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum ErrorKind {
    Connect,
    Timeout,
    RateLimited,
    Auth,
    Tool,
    Protocol,
    Resource,
    Cancelled,
    Rejected,
    Unknown,
}

impl ErrorKind {
    /// Every kind, in WIT order (the index is the counter slot).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Auth,
        ErrorKind::Tool,
        ErrorKind::Protocol,
        ErrorKind::Resource,
        ErrorKind::Cancelled,
        ErrorKind::Rejected,
        ErrorKind::Unknown,
    ];

    /// The kind's name as in WIT and `mender.toml` (`rate-limited`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Auth => "auth",
            ErrorKind::Tool => "tool",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Resource => "resource",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Unknown => "unknown",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether the upstream was actually called: rejected and cancelled
    /// attempts say nothing about the upstream's health, so they are not
    /// counted as failures in plugins' outcomes.
    pub(crate) fn reached_upstream(self) -> bool {
        !matches!(self, ErrorKind::Rejected | ErrorKind::Cancelled)
    }

    /// The kind an HTTP status implies.
    pub fn from_http_status(status: StatusCode, has_retry_after: bool) -> ErrorKind {
        match status.as_u16() {
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            // 503 with a Retry-After is the server shedding load on purpose.
            503 if has_retry_after => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            500..=599 => ErrorKind::Resource,
            400..=499 => ErrorKind::Tool,
            _ => ErrorKind::Unknown,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in one attempt, before the host adds the call's context
/// (service, attempt number, deadline...). The message may contain secrets:
/// the host redacts it before any plugin or log sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable detail (redacted by the host before use).
    pub message: String,
    /// HTTP status or JSON-RPC code, if any.
    pub status: Option<i32>,
    /// The upstream's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// Extra key/value context for plugins.
    pub tags: Vec<(String, String)>,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            tags: Vec::new(),
        }
    }

    /// With a status code.
    pub fn with_status(mut self, status: i32) -> Self {
        self.status = Some(status);
        self
    }

    /// With the upstream's `Retry-After`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// With a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// A failed HTTP response: kind from the status, `Retry-After` from the
    /// headers (seconds or an HTTP date).
    pub fn from_http(status: StatusCode, headers: &HeaderMap) -> Self {
        let retry_after = retry_after(headers);
        let kind = ErrorKind::from_http_status(status, retry_after.is_some());
        Failure {
            kind,
            message: format!("HTTP {status}"),
            status: Some(i32::from(status.as_u16())),
            retry_after,
            tags: Vec::new(),
        }
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date (a date in the past
/// means "now").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Turns a caller's error into a [`Failure`].
///
/// Implemented for [`std::io::Error`], tokio's timeout error, [`HttpError`],
/// `anyhow::Error` (looking through its chain for any of those), strings,
/// and `Failure` itself. Implement it for your own error type to tell mender
/// what kind of failure it is.
pub trait Classify {
    /// Classify this error.
    fn classify(&self) -> Failure;
}

impl Classify for Failure {
    fn classify(&self) -> Failure {
        self.clone()
    }
}

impl Classify for std::io::Error {
    fn classify(&self) -> Failure {
        use std::io::ErrorKind as Io;
        let kind = match self.kind() {
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::AddrInUse
            | Io::BrokenPipe
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown
            | Io::NotFound => ErrorKind::Connect,
            Io::TimedOut | Io::WouldBlock => ErrorKind::Timeout,
            Io::InvalidData | Io::UnexpectedEof => ErrorKind::Protocol,
            Io::OutOfMemory | Io::StorageFull | Io::ResourceBusy | Io::QuotaExceeded => {
                ErrorKind::Resource
            }
            Io::PermissionDenied => ErrorKind::Auth,
            _ => ErrorKind::Unknown,
        };
        Failure::new(kind, self.to_string())
    }
}

impl Classify for tokio::time::error::Elapsed {
    fn classify(&self) -> Failure {
        Failure::new(ErrorKind::Timeout, self.to_string())
    }
}

impl Classify for String {
    fn classify(&self) -> Failure {
        Failure::new(ErrorKind::Unknown, self.clone())
    }
}

impl Classify for &str {
    fn classify(&self) -> Failure {
        Failure::new(ErrorKind::Unknown, *self)
    }
}

/// An HTTP response that failed: its status, headers and (some of) its body.
/// Return it from a wrapped call to let mender classify by status and honour
/// `Retry-After`.
#[derive(Clone, Debug)]
pub struct HttpError {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The start of the body, for the message.
    pub body: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.body.is_empty() {
            write!(f, ": {}", self.body)?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

impl Classify for HttpError {
    fn classify(&self) -> Failure {
        let mut f = Failure::from_http(self.status, &self.headers);
        f.message = self.to_string();
        f
    }
}

/// The first error in a chain of causes that mender knows how to classify
/// (a [`Failure`], an [`HttpError`], an `io::Error` or a timeout), with
/// `message` (the whole chain, said for people) as its message.
fn classify_chain<'a>(
    causes: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
    message: String,
) -> Failure {
    for cause in causes {
        let found = if let Some(e) = cause.downcast_ref::<Failure>() {
            Some(e.classify())
        } else if let Some(e) = cause.downcast_ref::<HttpError>() {
            Some(e.classify())
        } else if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            Some(e.classify())
        } else {
            cause
                .downcast_ref::<tokio::time::error::Elapsed>()
                .map(|e| e.classify())
        };
        if let Some(mut failure) = found {
            failure.message = message;
            return failure;
        }
    }
    Failure::new(ErrorKind::Unknown, message)
}

impl Classify for anyhow::Error {
    fn classify(&self) -> Failure {
        // The whole context chain goes into the message.
        classify_chain(self.chain(), format!("{self:#}"))
    }
}

/// tower's `BoxError`: the first cause mender knows decides; else
/// `unknown`.
impl Classify for Box<dyn std::error::Error + Send + Sync> {
    fn classify(&self) -> Failure {
        let first: &(dyn std::error::Error + 'static) = self.as_ref();
        classify_chain(
            std::iter::successors(Some(first), |e| e.source()),
            self.to_string(),
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_classify() {
        let h = HeaderMap::new();
        assert_eq!(
            Failure::from_http(StatusCode::TOO_MANY_REQUESTS, &h).kind,
            ErrorKind::RateLimited
        );
        assert_eq!(
            Failure::from_http(StatusCode::UNAUTHORIZED, &h).kind,
            ErrorKind::Auth
        );
        assert_eq!(
            Failure::from_http(StatusCode::GATEWAY_TIMEOUT, &h).kind,
            ErrorKind::Timeout
        );
        assert_eq!(
            Failure::from_http(StatusCode::SERVICE_UNAVAILABLE, &h).kind,
            ErrorKind::Resource
        );
        assert_eq!(
            Failure::from_http(StatusCode::NOT_FOUND, &h).kind,
            ErrorKind::Tool
        );
    }

    #[test]
    fn retry_after_seconds_and_503_shedding() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let f = Failure::from_http(StatusCode::SERVICE_UNAVAILABLE, &h);
        assert_eq!(f.kind, ErrorKind::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(f.status, Some(503));
    }

    #[test]
    fn retry_after_past_date_means_now() {
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn io_and_anyhow_chains_classify() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io.classify().kind, ErrorKind::Connect);
        let any = anyhow::Error::new(io).context("calling github");
        let f = any.classify();
        assert_eq!(f.kind, ErrorKind::Connect);
        assert!(f.message.starts_with("calling github"));
    }
}
