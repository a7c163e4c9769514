//! Each local upstream's stderr, kept: the last `[mcp] log-lines` lines
//! per server, redacted and timestamped, with the error codes they carry
//! marked, for `mender logs` (over the status socket) and the admin
//! listener's `/logs`.
//!
//! Why keep them when they already go to the gateway's log: the gateway's
//! log is wherever its operator pointed stderr (often nowhere), mixed with
//! everything else. "What did the server say just before it failed?" is
//! the question, and `ETIMEDOUT` in the server's own words is the answer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Lines kept per server when `[mcp] log-lines` is not set: a few minutes
/// of a chatty server, at most a few hundred KB.
pub const DEFAULT_LOG_LINES: usize = 1000;

/// One line a server wrote to stderr.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increases by one per line across the gateway: `mender logs
    /// --follow` asks for the lines after the last it printed.
    pub seq: u64,
    /// When the gateway read it, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The server (`[mcp.servers.NAME]`).
    pub server: String,
    /// The line, redacted.
    pub line: String,
    /// Error codes found in it (`ECONNREFUSED`, `HTTP 503`, `JSON-RPC
    /// -32603`, `invalid_grant`), in order of appearance.
    #[serde(default)]
    pub codes: Vec<String>,
}

/// The numbering shared by every server's ring, so one `--follow` cursor
/// covers them all.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// One server's ring.
#[derive(Debug)]
pub(crate) struct StderrLog {
    capacity: usize,
    lines: Mutex<VecDeque<LogLine>>,
}

impl StderrLog {
    pub(crate) fn new(capacity: usize) -> Self {
        StderrLog {
            capacity,
            lines: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps `line` (already redacted) from `server`.
    pub(crate) fn push(&self, server: &str, line: String) {
        if self.capacity == 0 {
            return;
        }
        let entry = LogLine {
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
            at_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            server: server.to_owned(),
            codes: error_codes(&line),
            line,
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(entry);
    }

    /// The lines kept with `seq > after` and `at_unix_ms >= since`.
    pub(crate) fn read(&self, after: u64, since_unix_ms: u64) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.seq > after && l.at_unix_ms >= since_unix_ms)
            .cloned()
            .collect()
    }
}

/// What `mender logs` asks the gateway for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// One server's lines, or every server's.
    pub server: Option<String>,
    /// Only lines numbered above this (0: all kept).
    #[serde(default)]
    pub after_seq: u64,
    /// Only lines read at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub since_unix_ms: u64,
}

/// Errno names servers print (Node's `code`, libc's `strerror` names).
const ERRNO: &[&str] = &[
    "ETIMEDOUT",
    "ECONNREFUSED",
    "ECONNRESET",
    "ECONNABORTED",
    "ENOTFOUND",
    "EAI_AGAIN",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EPIPE",
    "EADDRINUSE",
    "EACCES",
    "ENOENT",
    "EMFILE",
];

/// OAuth 2.0 error codes (RFC 6749 §5.2, RFC 6750 §3.1).
const OAUTH: &[&str] = &[
    "invalid_grant",
    "invalid_client",
    "invalid_token",
    "invalid_request",
    "invalid_scope",
    "unauthorized_client",
    "unsupported_grant_type",
    "access_denied",
    "insufficient_scope",
];

/// Words after which a number is an HTTP status.
const STATUS_WORDS: &[&str] = &[
    "http",
    "status",
    "statuscode",
    "status_code",
    "code",
    "returned",
];

/// The error codes in `line`: errno names, OAuth errors, an HTTP status
/// of 4xx/5xx after a word that says so (`HTTP 503`, `status: 429`,
/// `HTTP/1.1 502`), and JSON-RPC error codes (-32768..=-32000).
pub fn error_codes(line: &str) -> Vec<String> {
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut codes: Vec<String> = Vec::new();
    let mut add = |code: String| {
        if !codes.contains(&code) {
            codes.push(code);
        }
    };
    for (i, word) in words.iter().enumerate() {
        if ERRNO.contains(word) || OAUTH.contains(word) {
            add((*word).to_owned());
        } else if let Ok(n) = word.parse::<i64>() {
            if (-32768..=-32000).contains(&n) {
                add(format!("JSON-RPC {n}"));
            } else if (400..=599).contains(&n) && i > 0 {
                let before = words[i - 1].to_ascii_lowercase();
                // `HTTP/1.1 503` splits into `HTTP`, `1`, `1`, `503`.
                let http_version = i >= 3 && words[i - 3].eq_ignore_ascii_case("http");
                if STATUS_WORDS.contains(&before.as_str()) || http_version {
                    add(format!("HTTP {n}"));
                }
            }
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_error_codes_are_marked() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Error: connect ECONNREFUSED 127.0.0.1:5432",
                &["ECONNREFUSED"],
            ),
            ("getaddrinfo ENOTFOUND api.example.com", &["ENOTFOUND"]),
            (
                "request failed: HTTP 503 Service Unavailable",
                &["HTTP 503"],
            ),
            ("upstream returned status: 429 (retry later)", &["HTTP 429"]),
            ("< HTTP/1.1 502 Bad Gateway", &["HTTP 502"]),
            (
                r#"{"error":{"code":-32603,"message":"internal"}}"#,
                &["JSON-RPC -32603"],
            ),
            (
                "token refresh failed: invalid_grant (ETIMEDOUT earlier)",
                &["invalid_grant", "ETIMEDOUT"],
            ),
            // Numbers that are not statuses: a port, a count, a year.
            ("listening on port 4040 with 500 workers since 2026", &[]),
            ("plain progress line", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(error_codes(line), *want, "{line}");
        }
    }

    #[test]
    fn the_ring_is_bounded_and_filters() {
        let log = StderrLog::new(3);
        for i in 0..5 {
            log.push("s", format!("line {i}"));
        }
        let all = log.read(0, 0);
        assert_eq!(
            all.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["line 2", "line 3", "line 4"]
        );
        let after = log.read(all[1].seq, 0);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].line, "line 4");
        assert!(log.read(0, u64::MAX).is_empty(), "`since` in the future");
        let off = StderrLog::new(0);
        off.push("s", "kept nowhere".into());
        assert!(off.read(0, 0).is_empty());
    }
}
