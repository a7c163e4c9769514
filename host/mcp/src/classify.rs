//! MCP failures as error events: what went wrong forwarding a request to an
//! upstream server, and which [`ErrorKind`] that is.

use std::sync::LazyLock;
use std::time::Duration;

use http::StatusCode;
use regex::Regex;
use rmcp::ServiceError;
use rmcp::model::{CallToolResult, ContentBlock, ErrorCode, ErrorData};

use mender::{Classify, ErrorKind, Failure};

/// Why one attempt at an upstream request failed.
#[derive(Debug, Clone)]
pub enum UpstreamError {
    /// The server could not be started (bad command, failed handshake).
    Spawn(String),
    /// The server is starting or restarting; nothing was sent.
    NotReady(String),
    /// The connection closed under the request (the server exited or was
    /// killed).
    Closed(String),
    /// No answer within the per-call timeout.
    Timeout(Duration),
    /// A JSON-RPC error response.
    Rpc(ErrorData),
    /// A remote server no longer knows the session the request was sent
    /// in (HTTP 404 on its `Mcp-Session-Id`, or the reference servers'
    /// 400): it did not run the request, and a new session is on its way.
    SessionExpired(String),
    /// A remote server answered with an HTTP error status (429, 5xx, 401…).
    Http {
        /// The status code.
        status: u16,
        /// Its `Retry-After`, as sent (seconds or an HTTP date).
        retry_after: Option<String>,
        /// What the transport said.
        message: String,
    },
    /// The tool ran and reported failure (`isError: true`); kept whole so a
    /// caller whose retries run out receives the server's own answer.
    Tool(Box<CallToolResult>),
    /// Anything else the SDK reported (send failure, bad response shape).
    Other(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Spawn(m) => write!(f, "cannot start server: {m}"),
            UpstreamError::NotReady(m) => write!(f, "server not ready: {m}"),
            UpstreamError::Closed(m) => write!(f, "connection closed: {m}"),
            UpstreamError::Timeout(t) => write!(f, "no answer within {t:?}"),
            UpstreamError::SessionExpired(m) => write!(
                f,
                "the server no longer knows the session ({m}); starting a new one"
            ),
            UpstreamError::Rpc(e) => write!(f, "JSON-RPC error {}: {}", e.code.0, e.message),
            UpstreamError::Http { message, .. } => f.write_str(message),
            UpstreamError::Tool(r) => write!(f, "tool error: {}", tool_text(r)),
            UpstreamError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for UpstreamError {}

impl From<ServiceError> for UpstreamError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::McpError(data) => UpstreamError::Rpc(data),
            ServiceError::TransportClosed => UpstreamError::Closed("transport closed".into()),
            ServiceError::TransportSend(e) => from_http(&*e.error).unwrap_or_else(|| {
                UpstreamError::Closed(format!("send failed: {}", error_chain(&e)))
            }),
            ServiceError::Timeout { timeout } => UpstreamError::Timeout(timeout),
            ServiceError::Cancelled { reason } => UpstreamError::Other(format!(
                "cancelled: {}",
                reason.as_deref().unwrap_or("no reason given")
            )),
            other => UpstreamError::Other(other.to_string()),
        }
    }
}

impl Classify for UpstreamError {
    fn classify(&self) -> Failure {
        let message = self.to_string();
        match self {
            UpstreamError::Spawn(_) | UpstreamError::NotReady(_) | UpstreamError::Closed(_) => {
                Failure::new(ErrorKind::Connect, message)
            }
            UpstreamError::Timeout(_) => Failure::new(ErrorKind::Timeout, message),
            UpstreamError::SessionExpired(_) => {
                Failure::new(ErrorKind::Connect, message).with_tag(SESSION_EXPIRED, "true")
            }
            UpstreamError::Rpc(e) => Failure::new(rpc_kind(e.code), message).with_status(e.code.0),
            UpstreamError::Http {
                status,
                retry_after,
                ..
            } => {
                let after = retry_after.as_deref().and_then(parse_retry_after);
                let kind = StatusCode::from_u16(*status).map_or(ErrorKind::Unknown, |s| {
                    ErrorKind::from_http_status(s, after.is_some())
                });
                let mut failure = Failure::new(kind, message).with_status(i32::from(*status));
                if let Some(after) = after {
                    failure = failure.with_retry_after(after);
                }
                failure
            }
            UpstreamError::Tool(r) => classify_tool_text(&tool_text(r)),
            UpstreamError::Other(_) => Failure::new(ErrorKind::Unknown, message),
        }
    }
}

/// An error and its sources, `: `-joined: reqwest's own message ("error
/// sending request") says nothing of the cause ("Connection refused",
/// "invalid peer certificate") that its sources carry.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The tag on the event of an attempt that failed because the server
/// forgot its session (see [`UpstreamError::SessionExpired`]).
pub const SESSION_EXPIRED: &str = "session-expired";

/// What a remote server's HTTP transport reported, when it is a status
/// the pipeline should see (a 429's `Retry-After` included), a timeout,
/// an expired session, or a refused/reset connection.
fn from_http(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<UpstreamError> {
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let e = e.downcast_ref::<StreamableHttpError<reqwest::Error>>()?;
    let message = error_chain(e);
    // rmcp keeps only 429 and 5xx as a status; any other error status (a
    // 401 or 403 without a challenge, a 400) arrives as text that starts
    // with it, or as reqwest's own status error.
    let status = match e {
        StreamableHttpError::UnexpectedServerResponse(text) => status_in(text),
        StreamableHttpError::Client(c) => c.status().map(|s| s.as_u16()),
        _ => None,
    };
    if let Some(status) = status {
        return Some(UpstreamError::Http {
            status,
            retry_after: None,
            message,
        });
    }
    Some(match e {
        StreamableHttpError::HttpStatus(s) => UpstreamError::Http {
            status: s.status,
            retry_after: s.retry_after.clone(),
            message,
        },
        StreamableHttpError::SessionExpired => UpstreamError::SessionExpired(message),
        StreamableHttpError::AuthRequired(_) => UpstreamError::Http {
            status: 401,
            retry_after: None,
            message,
        },
        StreamableHttpError::InsufficientScope(_) => UpstreamError::Http {
            status: 403,
            retry_after: None,
            message,
        },
        StreamableHttpError::Client(c) if c.is_timeout() => {
            UpstreamError::Other(format!("timed out: {message}"))
        }
        _ => UpstreamError::Closed(message),
    })
}

/// The error status rmcp's text for an unexpected answer starts with
/// (`HTTP 401 Unauthorized: …`).
fn status_in(text: &str) -> Option<u16> {
    let code = text.strip_prefix("HTTP ")?.get(..3)?;
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    (status.is_client_error() || status.is_server_error()).then_some(status.as_u16())
}

/// `Retry-After` as seconds or an HTTP date, read as the core reads it.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_str(value).ok()?,
    );
    mender::retry_after(&headers)
}

/// The kind a JSON-RPC error code implies.
pub fn rpc_kind(code: ErrorCode) -> ErrorKind {
    match code.0 {
        // Malformed traffic or a method the server lacks: retrying the same
        // bytes cannot help.
        -32700 | -32600 | -32601 | -32022 | -32021 | -32020 => ErrorKind::Protocol,
        // The arguments or the named resource are wrong: the caller's bug.
        -32602 | -32002 => ErrorKind::Tool,
        // The TypeScript SDK's RequestTimeout.
        -32001 => ErrorKind::Timeout,
        // An internal error is the server's trouble, like an HTTP 500.
        -32603 => ErrorKind::Resource,
        _ => ErrorKind::Unknown,
    }
}

/// The text blocks of a tool result, joined.
pub fn tool_text(r: &CallToolResult) -> String {
    let texts: Vec<&str> = r
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n")
}

static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:status(?:[ _-]?code)?|http(?:/[\d.]+)?|error)\s*[:=]?\s*(\d{3})\b")
        .unwrap()
});
static RETRY_AFTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)retry[ _-]after\D{0,3}(\d+(?:\.\d+)?)\s*(ms|s)?").unwrap());

/// Classifies a tool's error text. Servers wrapping HTTP APIs report the
/// upstream status in prose ("Failed to fetch … - status code 429"), so the
/// status and any Retry-After hint are read from it; without one, keywords
/// decide, and a plain tool error is `tool`.
pub fn classify_tool_text(text: &str) -> Failure {
    let lower = text.to_lowercase();
    let retry_after = RETRY_AFTER.captures(text).and_then(|c| {
        let n: f64 = c[1].parse().ok()?;
        let ms = if c
            .get(2)
            .is_some_and(|u| u.as_str().eq_ignore_ascii_case("ms"))
        {
            n
        } else {
            n * 1000.0
        };
        Some(Duration::from_millis(ms as u64))
    });
    let status = STATUS
        .captures(text)
        .and_then(|c| c[1].parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| s.is_client_error() || s.is_server_error());
    let kind = match status {
        Some(s) => ErrorKind::from_http_status(s, retry_after.is_some()),
        None if lower.contains("rate limit") || lower.contains("too many requests") => {
            ErrorKind::RateLimited
        }
        None if [
            "unauthorized",
            "forbidden",
            "expired token",
            "token expired",
            "invalid token",
        ]
        .iter()
        .any(|k| lower.contains(k)) =>
        {
            ErrorKind::Auth
        }
        None if lower.contains("timed out") || lower.contains("timeout") => ErrorKind::Timeout,
        None if lower.contains("connection refused") || lower.contains("connecterror") => {
            ErrorKind::Connect
        }
        None => ErrorKind::Tool,
    };
    let mut failure = Failure::new(kind, format!("tool error: {text}"));
    if let Some(s) = status {
        failure = failure.with_status(i32::from(s.as_u16()));
    }
    if let Some(after) = retry_after {
        failure = failure.with_retry_after(after);
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_text_hints_pick_the_kind() {
        let f = classify_tool_text("Failed to fetch http://x/ - status code 429");
        assert_eq!((f.kind, f.status), (ErrorKind::RateLimited, Some(429)));
        let f = classify_tool_text("HTTP 503: busy, retry after 7 s");
        assert_eq!(f.kind, ErrorKind::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(classify_tool_text("status code 401").kind, ErrorKind::Auth);
        assert_eq!(
            classify_tool_text("status code 500").kind,
            ErrorKind::Resource
        );
        assert_eq!(
            classify_tool_text("GitHub: rate limit exceeded").kind,
            ErrorKind::RateLimited
        );
        assert_eq!(
            classify_tool_text("ReadTimeout('timed out')").kind,
            ErrorKind::Timeout
        );
        assert_eq!(
            classify_tool_text("no such file: a.txt").kind,
            ErrorKind::Tool
        );
        // A number that is not a failing status is not one.
        assert_eq!(
            classify_tool_text("status code 200 but empty").kind,
            ErrorKind::Tool
        );
    }

    #[test]
    fn rpc_codes_and_transport_errors() {
        let e = UpstreamError::Rpc(ErrorData::new(ErrorCode::INVALID_PARAMS, "bad", None));
        assert_eq!(e.classify().kind, ErrorKind::Tool);
        assert_eq!(e.classify().status, Some(-32602));
        assert_eq!(rpc_kind(ErrorCode::METHOD_NOT_FOUND), ErrorKind::Protocol);
        assert_eq!(rpc_kind(ErrorCode::INTERNAL_ERROR), ErrorKind::Resource);
        let closed = UpstreamError::from(ServiceError::TransportClosed);
        assert_eq!(closed.classify().kind, ErrorKind::Connect);
        let t = UpstreamError::from(ServiceError::Timeout {
            timeout: Duration::from_secs(1),
        });
        assert_eq!(t.classify().kind, ErrorKind::Timeout);
    }

    #[test]
    fn http_statuses_rmcp_passes_as_text_keep_their_kind() {
        use rmcp::transport::streamable_http_client::StreamableHttpError;
        let text = |t: &'static str| {
            StreamableHttpError::<reqwest::Error>::UnexpectedServerResponse(t.into())
        };
        for (answer, kind, status) in [
            ("HTTP 401 Unauthorized: token expired", ErrorKind::Auth, 401),
            ("HTTP 403 Forbidden: ", ErrorKind::Auth, 403),
            ("HTTP 400 Bad Request: no", ErrorKind::Tool, 400),
        ] {
            let f = from_http(&text(answer)).expect("an HTTP error").classify();
            assert_eq!((f.kind, f.status), (kind, Some(status)), "{answer}");
        }
        // Text that is no status stays a broken connection.
        let f = from_http(&text("HTTP 200 OK but garbage"))
            .expect("an error")
            .classify();
        assert_eq!(f.kind, ErrorKind::Connect);
        let f = from_http(&text("could not parse"))
            .expect("an error")
            .classify();
        assert_eq!(f.kind, ErrorKind::Connect);
    }

    #[test]
    fn an_expired_session_is_connect_tagged_session_expired() {
        use rmcp::transport::streamable_http_client::StreamableHttpError;
        let e =
            from_http(&StreamableHttpError::<reqwest::Error>::SessionExpired).expect("an error");
        let f = e.classify();
        assert_eq!(f.kind, ErrorKind::Connect);
        assert_eq!(
            f.tags,
            vec![(SESSION_EXPIRED.to_owned(), "true".to_owned())]
        );
        assert!(f.message.contains("session"), "{}", f.message);
    }
}
