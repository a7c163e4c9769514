//! Property tests over untrusted input: config text, error messages, HTTP
//! responses, plugin decisions and component bytes. Each runs a bounded
//! number of cases in `cargo test`; run longer with, e.g.,
//! `PROPTEST_CASES=100000 cargo test --release -p mender --test fuzz`.

use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use mender::{Config, ErrorKind, Failure, Guardrails, Redactor, RetryRefusal};
use proptest::prelude::*;

/// Pieces of plausible and implausible mender.toml, so generated configs
/// reach the validator, not just the TOML parser.
fn config_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[guardrails]".to_owned()),
        Just("[limits]".to_owned()),
        "[plugins\\.[a-z]{1,3}]",
        "[services\\.[a-z]{1,3}]",
        "(max-attempts|pool-size|memory-mib|quarantine-after) = -?[0-9]{1,12}",
        "(attempt-timeout|deadline|max-delay|hook-timeout) = \"[0-9a-z ]{0,8}\"",
        "(bundled|path) = \"[a-z-]{0,20}\"",
        "(strategies|fallbacks) = \\[(\"[a-z]{1,3}\", ?){0,3}\\]",
        "on-fault = \"(fail-open|fail-closed|maybe)\"",
        "config = \\{ [a-z]{1,5} = [0-9]{1,3} \\}",
        "guardrails = \\{ max-attempts = [0-9]{1,3} \\}",
        ".{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_parsing_never_panics_and_locates_errors(lines in prop::collection::vec(config_line(), 0..12)) {
        let text = lines.join("\n");
        if let Err(e) = Config::parse(&text, "fuzz.toml", Path::new("/")) {
            let line_count = text.lines().count().max(1);
            prop_assert!(e.line >= 1 && e.line <= line_count + 1, "{e} (of {line_count} lines)");
            prop_assert!(e.column >= 1, "{e}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn redaction_never_panics_and_is_idempotent(text in ".{0,200}") {
        let r = Redactor::default();
        let once = r.redact(&text);
        prop_assert_eq!(r.redact(&once), once.clone());
    }

    #[test]
    fn known_token_shapes_never_survive(
        prefix in "[ -~]{0,40}",
        suffix in "[ -~]{0,40}",
        body in "[A-Za-z0-9]{36}",
        shape in 0usize..5,
    ) {
        let token = match shape {
            0 => format!("ghp_{body}"),
            1 => format!("sk-proj-{body}"),
            2 => format!("xoxb-{}", &body[..20]),
            3 => format!("AKIA{}", body[..16].to_ascii_uppercase()),
            _ => format!("Bearer {body}"),
        };
        let text = format!("{prefix} {token} {suffix}");
        let out = Redactor::default().redact(&text);
        prop_assert!(!out.contains(&token), "{token} survived in {out}");
    }

    // Secrets are drawn from token alphabets (no `[`/`]` or capitals), since
    // a "secret" like `]abc` could re-form across the `[REDACTED]` marker.
    #[test]
    fn registered_secrets_never_survive(secret in "[a-z0-9_.-]{6,30}", around in "[ -~]{0,60}") {
        let mut r = Redactor::default();
        r.add_secret(secret.clone());
        let text = format!("{around}{secret}{around}");
        prop_assert!(!r.redact(&text).contains(&secret));
    }

    // A registered secret in the encodings it travels in: upper-cased,
    // percent-encoded, JSON `\u` escapes, JSON-escaped `/` and `"`, split
    // across lines.
    #[test]
    fn registered_secrets_never_survive_encoding(
        secret in "[a-z0-9_./\"-]{6,30}",
        around in "[ -~]{0,40}",
        encoding in 0usize..6,
        split in 1usize..6,
    ) {
        let mut r = Redactor::default();
        r.add_secret(secret.clone());
        let encoded = match encoding {
            0 => secret.to_ascii_uppercase(),
            1 => secret.bytes().map(|b| format!("%{b:02X}")).collect(),
            2 => secret.chars().map(|c| format!("\\u{:04x}", u32::from(c))).collect(),
            3 => secret.replace('/', "\\/").replace('"', "\\\""),
            4 => {
                let at = split.min(secret.len() - 1);
                format!("{}\n{}", &secret[..at], &secret[at..])
            }
            _ => {
                let at = split.min(secret.len() - 1);
                format!("{}\\n{}", &secret[..at], &secret[at..])
            }
        };
        let text = format!("{around} {encoded} {around}");
        let out = r.redact(&text);
        prop_assert!(!out.contains(&encoded), "{encoded:?} survived in {out:?}");
    }

    #[test]
    fn more_token_shapes_never_survive(
        prefix in "[ -~]{0,40}",
        suffix in "[ -~]{0,40}",
        body in "[A-Za-z0-9]{36}",
        shape in 0usize..8,
    ) {
        let token = match shape {
            0 => format!("sk_live_{}", &body[..24]),
            1 => format!("glpat-{}", &body[..20]),
            2 => format!("hf_{}", &body[..34]),
            3 => format!("npm_{body}"),
            4 => format!("https://hooks.slack.com/services/T0/B0/{body}"),
            5 => format!("aws_secret_access_key={body}"),
            6 => format!("{{\"Authorization\":\"Basic {body}\"}}"),
            _ => format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----"),
        };
        let text = format!("{prefix} {token} {suffix}");
        let out = Redactor::default().redact(&text);
        prop_assert!(!out.contains(&body[..20]), "{token} survived in {out}");
    }

    #[test]
    fn bearer_tokens_in_base64_never_survive(body in "[A-Za-z0-9._-]{12,40}") {
        let encoded = base64(format!("Bearer {body}").as_bytes());
        let text = format!("header {encoded} sent");
        let out = Redactor::default().redact(&text);
        prop_assert!(!out.contains(&encoded), "{encoded} survived in {out}");
    }

    #[test]
    fn any_http_response_classifies(status in 100u16..1000, retry_after in ".{0,40}") {
        let mut headers = HeaderMap::new();
        // A value HTTP does not allow (a control character such as
        // `\u{b}`, which `trim` below would strip) never reaches the
        // classifier: it has no `Retry-After` to read.
        let sent = HeaderValue::from_str(&retry_after).is_ok_and(|v| {
            headers.insert(RETRY_AFTER, v);
            true
        });
        let status = StatusCode::from_u16(status).unwrap();
        let f = Failure::from_http(status, &headers);
        prop_assert_eq!(f.status, Some(i32::from(status.as_u16())));
        if status.as_u16() == 429 {
            prop_assert_eq!(f.kind, ErrorKind::RateLimited);
        }
        if let (true, Ok(secs)) = (sent, retry_after.trim().parse::<u64>()) {
            prop_assert_eq!(f.retry_after, Some(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn no_decision_escapes_the_guardrails(
        attempt in 0u32..10,
        idempotent: bool,
        delay_ms: u64,
        deadline_ms in prop::option::of(0u64..100_000),
    ) {
        let g = Guardrails::default();
        let left = deadline_ms.map(Duration::from_millis);
        match g.check_retry(attempt, idempotent, Duration::from_millis(delay_ms), left) {
            Ok(d) => {
                prop_assert!(d <= g.max_delay);
                prop_assert!(attempt < g.max_attempts);
                prop_assert!(idempotent || g.retry_non_idempotent);
                prop_assert!(left.is_none_or(|l| d < l));
            }
            Err(RetryRefusal::AttemptsExhausted(n)) => prop_assert!(attempt >= n),
            Err(RetryRefusal::NotIdempotent) => prop_assert!(!idempotent),
            Err(RetryRefusal::PastDeadline) => prop_assert!(left.is_some()),
            // The per-call check never consults the service's budget.
            Err(other) => prop_assert!(false, "unexpected refusal {other}"),
        }
    }
}

proptest! {
    // Each case compiles with a fresh engine: fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_not_crashed_on(
        header in prop_oneof![Just(b"\0asm\x0d\0\x01\0".to_vec()), Just(b"\0asm\x01\0\0\0".to_vec()), prop::collection::vec(any::<u8>(), 0..8)],
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = [header, body].concat();
        // Never a crash; at most an (empty) component, never a plugin.
        if let Ok(report) = mender::inspect(&bytes) {
            prop_assert!(!report.is_valid(), "{report:?}");
        }
    }
}

/// Standard base64 with padding, for the test above.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}
