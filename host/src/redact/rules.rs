//! The shapes of secrets the [`Redactor`](crate::Redactor) recognises on
//! its own, compiled once per process.
//!
//! The families follow gitleaks' and detect-secrets' rules: credential
//! headers and `name=value` pairs (in HTTP, JSON, URL query strings, form
//! and percent-encoded URLs), passwords in URLs, vendor token prefixes, JWTs
//! and PEM private keys. Every pattern is ASCII-only (`(?-u)` boundaries)
//! so the regex engine answers with its DFA, never the slower fallback.

use std::sync::LazyLock;

use regex::Regex;

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
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_-]{20,}={0,2}").expect("base64 pattern"));

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
}
