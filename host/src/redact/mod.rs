//! Secret redaction: nothing secret-looking reaches a plugin or a log.
//!
//! Every error message passes through [`Redactor::redact`] before the host
//! builds an error event or writes a log line from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use regex::{Regex, RegexBuilder};

mod rules;
#[cfg(feature = "log-writer")]
mod writer;

#[cfg(feature = "log-writer")]
pub use writer::RedactingWriter;

use rules::{
    BARE, BASE64_RUN, KEYED, PEM, SUSPECT, SUSPECT_BASE64, decode_base64, may_hold_a_secret,
    replace_bare,
};

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing every "ab" in a
/// message would destroy it without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// What may split a registered secret across lines: a real line break
/// (with the next line's indent) or a JSON-escaped one.
const LINE_BREAK: &str = r"(?:\r?\n[ \t]*|\\r\\n|\\n)?";

/// Redacts secrets from text: well-known credential shapes, credential
/// headers and parameters, private keys, base64 holding any of those, and
/// values the embedder registered as secret, in the forms they travel in.
///
/// What is covered (see `docs/security.md`):
///
/// * registered secrets exactly, in any letter case, percent-encoded
///   (`%2F`, `+` for a space), JSON-escaped (`\/`, `\u0041`), and split
///   across lines;
/// * `Authorization` / `Proxy-Authorization` / `Cookie` headers and
///   credential parameters (`api_key`, `access_token`, `password`,
///   `aws_secret_access_key`, `client_secret`, ...), written as HTTP
///   headers, JSON (quoted, escaped), query strings or percent-encoded
///   URLs (`access_token%3D…`);
/// * passwords in URLs (`postgres://user:p@ss@db`, `redis://:pw@host`);
/// * vendor token shapes (OpenAI, Anthropic, Stripe, GitHub, GitLab,
///   Hugging Face, Slack tokens and webhooks, Discord webhooks, AWS, Google,
///   npm, PyPI, SendGrid, Twilio, DigitalOcean, Shopify, ...), JWTs and
///   PEM private keys;
/// * base64 whose decoded text holds any of the above (`Bearer …`).
///
/// Clones share their registered secrets: a secret learnt while running
/// (an OAuth access token fetched or refreshed mid-call) is registered
/// once, through [`Redactor::add_runtime_secret`], and every clone — the
/// runtime's, the log writer's — redacts it from then on.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    registered: Arc<RwLock<Registered>>,
}

/// The secrets registered so far and their pattern.
#[derive(Debug, Default)]
struct Registered {
    secrets: Vec<String>,
    /// Every registered secret in every encoding above, as one pattern,
    /// compiled when a secret is added (never per message).
    pattern: Option<Regex>,
    /// Names redacted so far ([`Redactor::redact_name`]), under this
    /// `pattern`: emptied when it changes.
    names: Mutex<HashMap<Box<str>, Arc<str>>>,
}

/// Names [`Redactor::redact_name`] keeps before it starts over: far more
/// operations than a service has, and a bound if callers make each unique.
const NAMES_KEPT: usize = 1024;

impl Redactor {
    /// Registers an exact value (a token the agent holds) to redact
    /// wherever it appears, in any of the encodings listed above.
    pub fn add_secret(&mut self, secret: impl Into<String>) {
        self.add_runtime_secret(secret);
    }

    /// Registers a secret learnt while running, for this redactor and every
    /// clone of it (see [`Redactor`]). Compiles the pattern again, so meant
    /// for the rare secret (a token per refresh), not per message.
    pub fn add_runtime_secret(&self, secret: impl Into<String>) {
        let s = secret.into();
        // A panic elsewhere while holding the lock leaves a consistent
        // list (it is replaced whole), so a poisoned lock is still usable.
        let mut registered = self
            .registered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if s.chars().count() >= MIN_SECRET_LEN && !registered.secrets.contains(&s) {
            // Longest first, so a secret containing another is removed whole.
            registered.secrets.push(s);
            registered
                .secrets
                .sort_by_key(|s| std::cmp::Reverse(s.len()));
            registered.pattern = registered_pattern(&registered.secrets);
            registered
                .names
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Every secret registered so far (to hand them to another redactor).
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .secrets
            .clone()
    }

    /// The compiled pattern of the registered secrets (a cheap clone: the
    /// regex is shared), read without holding the lock while matching.
    fn pattern(&self) -> Option<Regex> {
        self.registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .pattern
            .clone()
    }

    /// The text with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        redact_with(self.pattern(), text)
    }

    /// [`redact`](Self::redact) for a name that comes back call after call
    /// (an operation, an upstream): redacted once, then remembered until a
    /// secret is registered. A name such as `tools/call:search` has a `:`,
    /// which sends it through the slow checks every time otherwise.
    pub(crate) fn redact_name(&self, name: &str) -> Arc<str> {
        // The read lock is held throughout, so a secret registered
        // meanwhile (under the write lock) cannot be missed by what is
        // remembered here.
        let registered = self
            .registered
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let kept = registered
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(redacted) = kept.get(name) {
            return redacted.clone();
        }
        drop(kept);
        let redacted: Arc<str> = redact_with(registered.pattern.clone(), name).into();
        let mut names = registered
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if names.len() >= NAMES_KEPT {
            names.clear();
        }
        names.insert(name.into(), redacted.clone());
        redacted
    }

    /// A `(key, value)` pair (a call's tag) redacted: the value as a
    /// credential if `key=value` reads as one (`api_key`, `authorization`),
    /// and each part for the secrets it holds itself.
    pub fn redact_pair(&self, key: &str, value: &str) -> (String, String) {
        let key = self.redact(key);
        let joined = self.redact(&format!("{key}={value}"));
        match joined.strip_prefix(&key).and_then(|v| v.strip_prefix('=')) {
            Some(value) => (key, value.to_owned()),
            None => (key, self.redact(value)),
        }
    }
}

/// [`Redactor::redact`] with `registered`, the registered secrets' pattern.
fn redact_with(registered: Option<Regex>, text: &str) -> String {
    let mut out = match &registered {
        Some(re) => re.replace_all(text, REDACTED).into_owned(),
        None => text.to_owned(),
    };
    // Most messages hold no secret. One pass of the set answers that
    // without the capture groups `replace_all` allocates for its first
    // search, which made up most of the cost of redacting a plain
    // message.
    if !may_hold_a_secret(&out) {
        return out;
    }
    let suspect = SUSPECT.matches(&out);
    let (pem, base64) = (out.contains("-----BEGIN"), suspect.matched(SUSPECT_BASE64));
    if !(suspect.matched_any() || pem) {
        return out;
    }
    if pem {
        out = PEM.replace_all(&out, REDACTED).into_owned();
    }
    if base64 {
        out = BASE64_RUN
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let run = &c[0];
                if hides_a_secret(registered.as_ref(), run) {
                    REDACTED.to_owned()
                } else {
                    run.to_owned()
                }
            })
            .into_owned();
    }
    let out = BARE.replace_all(&out, replace_bare);
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

/// Whether `run` is base64 of text holding a secret (one level deep:
/// base64 of base64 is not unwrapped).
fn hides_a_secret(registered: Option<&Regex>, run: &str) -> bool {
    let Some(bytes) = decode_base64(run) else {
        return false;
    };
    let decoded = String::from_utf8_lossy(&bytes);
    // Binary (a hash, an image) decodes to mostly replacement
    // characters; only text can hold a credential we recognise.
    if decoded
        .chars()
        .filter(|c| *c == char::REPLACEMENT_CHARACTER)
        .count()
        * 4
        > decoded.len()
    {
        return false;
    }
    registered.is_some_and(|re| re.is_match(&decoded))
        || BARE.is_match(&decoded)
        || KEYED.is_match(&decoded)
        || decoded.contains("PRIVATE KEY")
}

/// One pattern matching every secret in `secrets` in the forms it travels
/// in (see [`Redactor`]); `None` if there are none or the pattern is too
/// large to compile (then only exact matches would be possible, so that is
/// what it falls back to).
fn registered_pattern(secrets: &[String]) -> Option<Regex> {
    if secrets.is_empty() {
        return None;
    }
    let fuzzy: Vec<String> = secrets.iter().map(|s| secret_pattern(s)).collect();
    let build = |alternatives: &[String]| {
        RegexBuilder::new(&format!("(?i)(?:{})", alternatives.join("|")))
            .size_limit(64 << 20)
            .build()
    };
    build(&fuzzy).ok().or_else(|| {
        let exact: Vec<String> = secrets.iter().map(|s| regex::escape(s)).collect();
        build(&exact).ok()
    })
}

/// The pattern of one secret: each character as itself (any case), as its
/// percent-encoding, as a JSON `\u` escape (`\u0061` for `a`), or backslash-escaped;
/// a space also as `+`; optionally a line break between characters.
fn secret_pattern(secret: &str) -> String {
    let mut out = String::new();
    for (i, c) in secret.chars().enumerate() {
        if i > 0 {
            out.push_str(LINE_BREAK);
        }
        let mut forms = vec![regex::escape(c.encode_utf8(&mut [0; 4]))];
        let mut utf8 = [0; 4];
        let percent: String = c
            .encode_utf8(&mut utf8)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        forms.push(percent);
        if let Ok(unit) = u16::try_from(u32::from(c)) {
            forms.push(format!(r"\\u{unit:04X}"));
        }
        match c {
            ' ' => forms.push(r"\+".to_owned()),
            '/' | '"' | '\\' => forms.push(format!(r"\\+{}", regex::escape(&c.to_string()))),
            _ => {}
        }
        out.push_str(&format!("(?:{})", forms.join("|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_name_is_redacted_again_after_a_secret_is_registered() {
        let r = Redactor::default();
        let name = "tools/call:search?key=hunter2-token";
        let plain = "tools/call:lookup-hunter2-tok";
        assert_eq!(&*r.redact_name(name), r.redact(name));
        assert_eq!(&*r.redact_name(plain), plain, "nothing secret yet");
        r.clone().add_runtime_secret("hunter2-tok");
        assert_eq!(&*r.redact_name(plain), "tools/call:lookup-[REDACTED]");
        assert_eq!(&*r.redact_name(name), r.redact(name));
        // Bounded: unique names never grow the memory past the limit.
        for i in 0..(NAMES_KEPT + 10) {
            r.redact_name(&format!("op{i}"));
        }
        let kept = r.registered.read().unwrap().names.lock().unwrap().len();
        assert!(kept <= NAMES_KEPT, "{kept}");
    }

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
        for (msg, secret) in corpus.iter().chain(MISSED_BEFORE) {
            let out = r.redact(msg);
            assert!(!out.contains(secret), "{secret} leaked in {out:?}");
            assert!(out.contains(REDACTED), "{out:?}");
        }
    }

    /// Shapes issue #15 found leaking, each with the part that must go.
    const MISSED_BEFORE: &[(&str, &str)] = &[
        // The registered secret `hunter2-registered`, encoded.
        ("echo hunter2%2Dregistered", "hunter2%2Dregistered"),
        ("echo HUNTER2-REGISTERED", "HUNTER2-REGISTERED"),
        ("echo hunter2-regi\nstered", "stered"),
        ("echo hunter2-regi\n  stered", "stered"),
        ("{\"m\":\"hunter2\\u002dregistered\"}", "registered"),
        // Base64 of `Bearer <token>`.
        (
            "hdr: QmVhcmVyIGFiYy5kZWYuZ2hpamtsbW5vcA==",
            "QmVhcmVyIGFiYy5kZWYuZ2hpamtsbW5vcA",
        ),
        // JSON headers.
        (
            "{\"Authorization\":\"Basic dXNlcjpwYXNzd29yZA==\"}",
            "dXNlcjpwYXNzd29yZA",
        ),
        (
            "{\"Authorization\": \"token ghx_opaque_value_123\"}",
            "ghx_opaque_value_123",
        ),
        (
            "{\"Authorization\": \"Bearer abc\\/def+ghijkl==\"}",
            "def+ghijkl",
        ),
        (
            "{\\\"api_key\\\":\\\"nested-json-secret\\\"}",
            "nested-json-secret",
        ),
        // Webhooks.
        (
            "post https://hooks.slack.com/services/T0000/B0000/q7Rk2mWz9LpX4vNc8TbY3sHd failed",
            "q7Rk2mWz9LpX4vNc8TbY3sHd",
        ),
        (
            "https://discord.com/api/webhooks/123456/abcDEF-ghi_jkl",
            "abcDEF-ghi_jkl",
        ),
        // Passwords in URLs.
        ("connect postgres://user:p@ss@db:5432/app refused", "p@ss"),
        ("connect postgres://user:p@ss@db:5432/app refused", "ss@db"),
        (
            "redis://:redis-password@cache:6379/0 refused",
            "redis-password",
        ),
        // Encoded URLs.
        (
            "redirect=https%3A%2F%2Fx.io%2Fcb%3Faccess_token%3Dya-secret-99%26state%3D1",
            "ya-secret-99",
        ),
        // Keyed and vendor shapes.
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        ),
        (
            "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc declined",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
        (
            "gitlab glpat-xxxxxxxxxxxxxxxxxxxx1234 expired",
            "glpat-xxxxxxxxxxxxxxxxxxxx1234",
        ),
        (
            "hf hf_abcdefghijklmnopqrstuvwxyzABCDEFGH bad",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        ),
        (
            "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7zZ\n-----END RSA PRIVATE KEY----- end",
            "MIIEpAIBAAKCAQEA7zZ",
        ),
        (
            "cut: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0",
            "MIIEvQIBADANBgkqhkiG9w0",
        ),
        (
            "npm npm_abcdefghijklmnopqrstuvwxyz0123456789 revoked",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;",
            "c2VjcmV0a2V5",
        ),
    ];

    #[test]
    fn registered_secret_in_a_url_and_with_escapes() {
        let mut r = Redactor::default();
        r.add_secret("p@ss/w rd\"x");
        for msg in [
            "a p%40ss%2Fw+rd%22x b",
            "a p@ss\\/w rd\\\"x b",
            "a P@SS/W RD\"X b",
        ] {
            let out = r.redact(msg);
            assert_eq!(out, format!("a {REDACTED} b"), "{msg}");
        }
    }

    #[test]
    fn a_secret_learnt_at_run_time_reaches_every_clone() {
        let runtime = Redactor::default();
        let log_writer = runtime.clone();
        runtime.add_runtime_secret("fresh-access-token-77");
        let line = "the server echoed fresh-access-token-77 back";
        assert_eq!(
            log_writer.redact(line),
            format!("the server echoed {REDACTED} back")
        );
        assert!(!runtime.redact(line).contains("fresh-access-token-77"));
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let r = Redactor::default();
        for msg in [
            "connection refused (os error 111) while calling tools/list",
            "max_tokens: 1024, idempotency_key=req-7, sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "GET https://api.example.com:443/v1/users/42?page=2 -> 503",
            "see https://docs.example.com/errors/rate_limit_exceeded_for_tokens_per_min",
        ] {
            assert_eq!(r.redact(msg), msg);
        }
    }
}
