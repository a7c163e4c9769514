//! Escaping what a plugin writes, so it cannot forge log lines or drive a
//! terminal.
//!
//! A plugin's log line, rejection or failure reason, fault message or
//! metric name ends up in the agent's log, its errors and the demo's
//! timeline. A `\n` in it would start a line of the plugin's choosing (an
//! `INFO` line that never happened), a `\r` would overwrite one, and an
//! ANSI escape (`ESC [ …`) would recolour, move the cursor or retitle the
//! terminal. Every such character is written out as a visible escape
//! instead (`\n`, `\r`, `\t`, `\u{1b}`), so the text stays readable and
//! one plugin line is one log line.

use std::borrow::Cow;

/// Whether `c` must not reach a log or a terminal raw: C0 and C1 controls
/// and DEL, and the Unicode characters that break or reorder lines (line
/// and paragraph separators, bidirectional overrides and isolates, which
/// can make a line read as something else).
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'
                ..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with control characters written as escapes (`\n`, `\r`, `\t`,
/// `\\u{1b}`...). Text without any is returned as is, without copying.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape_control`] in place, for owned text.
pub(crate) fn escape_owned(text: String) -> String {
    match escape_control(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_escapes() {
        assert_eq!(
            escape_control("ok\n2026-01-01T00:00:00Z  INFO forged"),
            "ok\\n2026-01-01T00:00:00Z  INFO forged"
        );
        assert_eq!(
            escape_control("\x1b[31mred\x1b[0m"),
            "\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(escape_control("a\rb\tc\u{7f}"), "a\\rb\\tc\\u{7f}");
        assert_eq!(escape_control("x\u{202e}y\u{2028}"), "x\\u{202e}y\\u{2028}");
    }

    #[test]
    fn plain_text_is_not_copied() {
        let text = "circuit opened: 5 consecutive failures — é ✓";
        assert!(matches!(escape_control(text), Cow::Borrowed(t) if t == text));
        assert_eq!(escape_owned(text.to_owned()), text);
    }
}
