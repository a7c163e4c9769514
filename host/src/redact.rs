//! Secret redaction: nothing secret-looking reaches a plugin or a log.
//!
//! Every error message passes through [`Redactor::redact`] before the host
//! builds an error event or writes a log line from it.

use std::sync::LazyLock;

use regex::Regex;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing every "ab" in a
/// message would destroy it without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// `Name: value` / `name=value` pairs whose value is a credential. The key
/// and separator are kept so the message still says what was there.
static KEYED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?ix)
        (?P<key>
            \b(?:proxy-)?authorization \s*[:=]\s* (?:(?:bearer|basic|token|digest)\s+)?
          | \b(?:set-)?cookie \s*[:=]\s*
          | \b(?:x-)?api[-_]?key \s*[:=]\s*
          | \b(?:access[-_]?token|refresh[-_]?token|id[-_]?token|client[-_]?secret|password|passwd|secret|token|apikey|api_key|key|sig|signature)
            \s*["']?\s*[:=]\s*["']?
        )
        (?P<value>[^\s"'&,;}]+)
        "#,
    )
    .expect("keyed secret pattern")
});

/// Credentials recognisable on their own, wherever they appear.
static BARE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          \b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}
        | \bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}
        | \b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}
        | \bgithub_pat_[A-Za-z0-9_]{20,}
        | \bxox[abprse]-[A-Za-z0-9-]{10,}
        | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b
        | \beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}
        | \bAIza[0-9A-Za-z_-]{35}
        | ://[^/\s:@]+:[^/\s@]+@
        ",
    )
    .expect("bare secret pattern")
});

/// Redacts secrets from text: well-known credential shapes, credential
/// headers and parameters, and values the embedder registered as secret.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Registers an exact value (a token the agent holds) to redact
    /// wherever it appears.
    pub fn add_secret(&mut self, secret: impl Into<String>) {
        let s = secret.into();
        if s.len() >= MIN_SECRET_LEN && !self.secrets.contains(&s) {
            // Longest first, so a secret containing another is removed whole.
            self.secrets.push(s);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// The text with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        // Most messages hold no secret. `is_match` answers that without
        // the capture groups `replace_all` allocates for its first search,
        // which made up most of the cost of redacting a plain message.
        if !BARE.is_match(&out) && !KEYED.is_match(&out) {
            return out;
        }
        let out = BARE.replace_all(&out, |c: &regex::Captures<'_>| {
            let m = &c[0];
            if let Some(rest) = m.strip_prefix("://") {
                // Keep the user name of `scheme://user:password@host`.
                let user = rest.split(':').next().unwrap_or("");
                format!("://{user}:{REDACTED}@")
            } else if m.get(..6).is_some_and(|w| w.eq_ignore_ascii_case("bearer")) {
                format!("{} {REDACTED}", &m[..6])
            } else {
                REDACTED.to_owned()
            }
        });
        KEYED
            .replace_all(&out, |c: &regex::Captures<'_>| {
                if &c["value"] == REDACTED {
                    c[0].to_owned()
                } else {
                    format!("{}{REDACTED}", &c["key"])
                }
            })
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_realistic_messages() {
        let mut r = Redactor::default();
        r.add_secret("hunter2-registered");
        let corpus = [
            (
                "Authorization: Bearer abc.def.ghijklmnop",
                "abc.def.ghijklmnop",
            ),
            (
                "request failed: Authorization: Basic dXNlcjpwYXNz",
                "dXNlcjpwYXNz",
            ),
            ("Cookie: session=deadbeefcafe; Path=/", "deadbeefcafe"),
            ("GET /v1?api_key=AbC123xyz&q=1 -> 401", "AbC123xyz"),
            (
                "openai: invalid key sk-proj-abcdefghijklmnop1234",
                "sk-proj-abcdefghijklmnop1234",
            ),
            (
                "github ghp_0123456789abcdefghijABCDEFGHIJ rejected",
                "ghp_0123456789abcdefghijABCDEFGHIJ",
            ),
            (
                "slack xoxb-1234567890-abcdefghij failed",
                "xoxb-1234567890-abcdefghij",
            ),
            ("aws AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
            (
                "connect postgres://app:s3cretpw@db:5432 refused",
                "s3cretpw",
            ),
            ("{\"token\": \"tok_live_998877\"}", "tok_live_998877"),
            ("upstream echoed hunter2-registered", "hunter2-registered"),
        ];
        for (msg, secret) in corpus {
            let out = r.redact(msg);
            assert!(!out.contains(secret), "{secret} leaked in {out:?}");
            assert!(out.contains(REDACTED), "{out:?}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let r = Redactor::default();
        let msg = "connection refused (os error 111) while calling tools/list";
        assert_eq!(r.redact(msg), msg);
    }
}
