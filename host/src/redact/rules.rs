//! The shapes of secrets the [`Redactor`](crate::Redactor) recognises on
//! its own, compiled once per process.
//!
//! The families follow gitleaks' and detect-secrets' rules: credential
//! headers and `name=value` pairs (in HTTP, JSON, URL query strings, form
//! and percent-encoded URLs), passwords in URLs, vendor token prefixes, JWTs
//! and PEM private keys. Every pattern is ASCII-only (`(?-u)` boundaries)
//! so the regex engine answers with its DFA, never the slower fallback.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// A quote around a key or value, possibly backslash-escaped (JSON inside
/// JSON: `{\"token\":\"…\"}`).
const QUOTE: &str = r#"(?:\\*["'])?"#;

/// A key/value separator: `:` or `=`, also percent-encoded (`%3A`, `%3D`)
/// as in a URL nested in a query parameter.
const SEPARATOR: &str = r"(?:[:=]|%3[ad])";

/// A credential value: up to the next space, quote, `&`, `,`, `;`, `}`,
/// `)`, `<` or `>`, or the percent-encoded form of one of those (`%20`,
/// `%22`, `%26`, `%27`, `%2C`); a JSON escape (`\/`) is part of the value,
/// an escaped quote (`\"`) ends it.
const VALUE: &str = r#"(?:[^\s"'&,;}<>)%\\]|%(?:[013-9a-f][0-9a-f]|2[13-589abd-f])|\\[^"'\s])+"#;

/// Names whose value is a credential wherever they appear, also with a
/// prefix (`aws_secret_access_key`, `x_auth_token`, `github_token`).
const SECRET_NAMES: &str = r"(?:x-)?(?:api[-_]?key|apikey|access[-_]?token|refresh[-_]?token|id[-_]?token|auth[-_]?token|session[-_]?token|bot[-_]?token|client[-_]?secret|(?:secret[-_]?)?access[-_]?key(?:[-_]?id)?|shared[-_]?access[-_]?key|account[-_]?key|private[-_]?key|secret[-_]?key|password|passwd|pwd|secret|token|credentials?|sas[-_]?token)";

/// Short names that are credentials only on their own (`key=…`, `sig=…`),
/// not as the end of a longer name (`idempotency_key`).
const SHORT_NAMES: &str = r"(?:key|sig|signature)";

/// `Name: value` / `name=value` pairs whose value is a credential. The key
/// and separator (group `key`) are kept so the message still says what was
/// there; `value` is replaced.
pub(crate) static KEYED: LazyLock<Regex> = LazyLock::new(|| {
    // A key starts at a word boundary or right after a percent-escape
    // (`%3Faccess_token%3D…`, where `F` and `a` are both word characters).
    let start = r"(?:(?-u:\b)|%[0-9a-f]{2})";
    let pair = format!(r"{QUOTE}\s*{SEPARATOR}\s*{QUOTE}");
    Regex::new(&format!(
        r"(?i)(?P<key>{start}(?:proxy-)?authorization{pair}(?:(?:bearer|basic|token|digest|apikey|key|sso-key)\s+)?|{start}(?:set-)?cookie{pair}|{start}(?:[a-z0-9]+[-_.])*{SECRET_NAMES}{pair}|{start}{SHORT_NAMES}{pair})(?P<value>{VALUE})"
    ))
    .expect("keyed secret pattern")
});

/// Credentials recognisable on their own, wherever they appear. Named
/// groups mark the ones whose start is kept (see [`replace_bare`]).
pub(crate) static BARE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          (?P<bearer>(?-u:\b)(?i:bearer))\s+(?:[A-Za-z0-9._~+/=-]|\\/){8,}
        | (?-u:\b)sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{16,}
        | (?-u:\b)[sr]k_(?:live|test)_[A-Za-z0-9]{10,}
        | (?-u:\b)(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}
        | (?-u:\b)github_pat_[A-Za-z0-9_]{20,}
        | (?-u:\b)gl(?:pat|ptt|dt|rt|soat|cbt|ft|imt)-[A-Za-z0-9_-]{20,}
        | (?-u:\b)hf_[A-Za-z0-9]{30,}
        | (?-u:\b)npm_[A-Za-z0-9]{36}
        | (?-u:\b)pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}
        | (?-u:\b)xox[abprse]-[A-Za-z0-9-]{10,}
        | (?-u:\b)xapp-\d-[A-Za-z0-9-]{10,}
        | (?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)
        | (?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}
        | (?-u:\b)AIza[0-9A-Za-z_-]{35}
        | (?-u:\b)ya29\.[0-9A-Za-z_-]{20,}
        | (?-u:\b)SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}
        | (?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)
        | (?-u:\b)do[por]_v1_[a-f0-9]{64}
        | (?-u:\b)shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}
        | (?-u:\b)(?:gsk|r8)_[A-Za-z0-9]{20,}
        | (?-u:\b)dapi[a-f0-9]{32}
        | (?-u:\b)key-[0-9a-zA-Z]{32}(?-u:\b)
        | (?-u:\b)\d{8,10}:AA[0-9A-Za-z_-]{33}
        | AGE-SECRET-KEY-1[0-9A-Z]{58}
        | (?P<hook>(?i:https?://hooks\.slack\.com/(?:services|workflows|triggers)/|https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/))[A-Za-z0-9_/+-]+
        | (?P<userinfo>://[^/\s:@]*):[^/\s]+@
        ",
    )
    .expect("bare secret pattern")
});

/// A PEM private key, from its BEGIN line to its END line, or to the end
/// of the text when the message was cut before it. Replaced whole.
pub(crate) static PEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)")
        .expect("PEM pattern")
});

/// A run that may be base64 of a secret (`Bearer …`, `user:password`):
/// long enough to hold one, standard or URL-safe alphabet.
pub(crate) static BASE64_RUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(BASE64_PATTERN).expect("base64 pattern"));

const BASE64_PATTERN: &str = r"[A-Za-z0-9+/_-]{20,}={0,2}";

/// [`BARE`], [`KEYED`] and [`BASE64_RUN`] as one set, index for index:
/// whether a text may hold a secret at all, in one pass over it instead
/// of three. Most messages hold none, and this check is then all that
/// redacting them costs.
pub(crate) static SUSPECT: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([BARE.as_str(), KEYED.as_str(), BASE64_PATTERN]).expect("suspect set")
});

/// [`SUSPECT`]'s index of [`BASE64_RUN`].
pub(crate) const SUSPECT_BASE64: usize = 2;

/// Whether `text` may match [`BARE`], [`KEYED`], [`BASE64_RUN`] or
/// [`PEM`] at all, by one byte scan: each of them needs a separator (`:`,
/// `=`, `%3a`, `%3d`), a `@`, the word `bearer` (whose value may be as
/// short as 8), `-----` (PEM), or a run of at least 15 token characters
/// (letters, digits, `._~+/=-\\`): every vendor token's prefix and body
/// together are 15 or more, base64 runs 20. Plain messages ("connection
/// refused", "attempt timed out after 5s") have none of these and skip
/// the regexes. `a_clean_scan_never_hides_a_match` checks the claim
/// against the patterns.
pub(crate) fn may_hold_a_secret(text: &str) -> bool {
    let mut run = 0;
    let mut dashes = 0;
    for b in text.bytes() {
        if matches!(b, b':' | b'=' | b'%' | b'@') {
            return true;
        }
        dashes = if b == b'-' { dashes + 1 } else { 0 };
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-' | b'\\')
        {
            run += 1;
            if run >= 15 || dashes >= 5 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    text.as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"bearer"))
}

/// What one [`BARE`] match becomes: the URL or scheme it starts with is
/// kept (`Bearer [REDACTED]`, `://user:[REDACTED]@`,
/// `https://hooks.slack.com/services/[REDACTED]`).
pub(crate) fn replace_bare(c: &regex::Captures<'_>) -> String {
    use crate::redact::REDACTED;
    if let Some(kept) = c.name("userinfo") {
        format!("{}:{REDACTED}@", kept.as_str())
    } else if let Some(kept) = c.name("bearer").or_else(|| c.name("hook")) {
        let sep = if c.name("bearer").is_some() { " " } else { "" };
        format!("{}{sep}{REDACTED}", kept.as_str())
    } else {
        REDACTED.to_owned()
    }
}

/// Decodes standard or URL-safe base64 (padding optional); `None` if it is
/// not base64. Small enough to keep here rather than add a dependency for
/// one use.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_both_alphabets() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("QmVhcmVyIHg=").unwrap(), b"Bearer x");
        assert_eq!(decode_base64("-_8").unwrap(), [0xfb, 0xff]);
        assert!(decode_base64("abcde").is_none());
        assert!(decode_base64("ab!c").is_none());
    }

    #[test]
    fn the_scan_sees_what_the_patterns_need() {
        for plain in ["connection refused", "attempt timed out after 5s", ""] {
            assert!(!may_hold_a_secret(plain), "{plain}");
        }
        for suspect in [
            "Bearer abcdefgh",
            "token=x",
            "a%3Db",
            "://u:p@h",
            "-----BEGIN",
            "ghp_0123456789abcdefghij",
            "BEARER",
        ] {
            assert!(may_hold_a_secret(suspect), "{suspect}");
        }
    }

    proptest::proptest! {
        /// Texts of token runs up to 25 long (vendor prefixes among
        /// them) between other characters (no separator, no `@`):
        /// whenever the scan calls one clean, no pattern matches it.
        /// (With a run limit of 25 instead of 15 this fails: base64.)
        #[test]
        fn a_clean_scan_never_hides_a_match(
            text in r#"((?i:bearer|sk-|ghp_|eyJ|AKIA|-----)?[A-Za-z0-9]{0,12}[._~+/\\-]?[A-Za-z0-9]{0,12}[ \t"',;!?()<>{}\[\]&*#$^|`]{1,3}){0,3}"#
        ) {
            if !may_hold_a_secret(&text) {
                proptest::prop_assert!(!SUSPECT.is_match(&text), "{text:?}");
                proptest::prop_assert!(!PEM.is_match(&text), "{text:?}");
            }
        }
    }
}
