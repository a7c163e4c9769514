//! [`Millis`]: a duration in milliseconds, as plugin configs write it.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration in whole milliseconds, for config fields.
///
/// Deserializes from a non-negative integer (milliseconds) or from a string
/// with a unit: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`. Everything the host
/// hands a plugin is already a `u64` of milliseconds; convert with
/// [`Millis::get`] or `u64::from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero milliseconds.
    pub const ZERO: Millis = Millis(0);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Millis {
        Millis(ms)
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs.saturating_mul(1_000))
    }

    /// `mins` minutes.
    pub const fn from_mins(mins: u64) -> Millis {
        Millis(mins.saturating_mul(60_000))
    }

    /// The number of milliseconds.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<Millis> for u64 {
    fn from(m: Millis) -> u64 {
        m.0
    }
}

impl From<u64> for Millis {
    fn from(ms: u64) -> Millis {
        Millis(ms)
    }
}

impl fmt::Display for Millis {
    /// The shortest exact form: `1h`, `2m`, `1500ms`, `3s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0ms");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// Why a duration string could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMillisError(String);

impl fmt::Display for ParseMillisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseMillisError {}

const EXPECTED: &str = r#"a duration such as 250 (milliseconds), "250ms", "1.5s", "2m" or "1h""#;

impl FromStr for Millis {
    type Err = ParseMillisError;

    fn from_str(text: &str) -> Result<Millis, ParseMillisError> {
        let bad = |why: &str| ParseMillisError(format!("invalid duration {text:?}: {why}"));
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(&format!("missing unit; expected {EXPECTED}")))?;
        let (number, unit) = trimmed.split_at(split);
        let unit_ms: u64 = match unit.trim_start() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(bad(&format!("unknown unit {other:?}; use ms, s, m or h")));
            }
        };
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(bad(&format!("expected {EXPECTED}")));
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.contains('.') {
            return Err(bad(&format!("expected {EXPECTED}")));
        }
        let too_long = || bad("too long to represent");
        let whole: u64 = whole.parse().map_err(|_| too_long())?;
        let mut total = whole.checked_mul(unit_ms).ok_or_else(too_long)?;
        // The fraction is exact in decimal: "1.5s" is 1500ms, no float error.
        let mut scale = unit_ms;
        for digit in fraction.bytes() {
            let digit = u64::from(digit - b'0');
            if !scale.is_multiple_of(10) {
                if digit != 0 {
                    return Err(bad("not a whole number of milliseconds"));
                }
                continue;
            }
            scale /= 10;
            total = total.checked_add(digit * scale).ok_or_else(too_long)?;
        }
        Ok(Millis(total))
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Millis, D::Error> {
        struct MillisVisitor;

        impl Visitor<'_> for MillisVisitor {
            type Value = Millis;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Millis, E> {
                Ok(Millis(ms))
            }

            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Millis, E> {
                u64::try_from(ms)
                    .map(Millis)
                    .map_err(|_| E::custom(format!("invalid duration {ms}: must not be negative")))
            }

            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Millis, E> {
                Err(E::custom(format!(
                    "invalid duration {ms}: a bare number is whole milliseconds; \
                     write a string such as \"1.5s\" for fractions"
                )))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Millis, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(MillisVisitor)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u64, String> {
        text.parse::<Millis>()
            .map(u64::from)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("250ms"), Ok(250));
        assert_eq!(parse("1.5s"), Ok(1_500));
        assert_eq!(parse("2m"), Ok(120_000));
        assert_eq!(parse("1h"), Ok(3_600_000));
        assert_eq!(parse(" 3 s "), Ok(3_000));
        assert_eq!(parse("0.001s"), Ok(1));
        assert_eq!(parse("1.25m"), Ok(75_000));
        assert_eq!(parse("0ms"), Ok(0));
    }

    #[test]
    fn rejects_bad_strings_with_a_reason() {
        assert!(parse("250").unwrap_err().contains("missing unit"));
        assert!(parse("5d").unwrap_err().contains("unknown unit \"d\""));
        assert!(
            parse("1.5ms")
                .unwrap_err()
                .contains("whole number of milliseconds")
        );
        assert!(parse("0.0001s").unwrap_err().contains("whole number"));
        assert!(parse("s").is_err());
        assert!(parse(".5s").is_err());
        assert!(parse("1.s").is_err());
        assert!(parse("1.2.3s").is_err());
        assert!(parse("-1s").is_err());
        assert!(
            parse("99999999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse("5124095576030432h").unwrap_err().contains("too long"));
    }

    #[test]
    fn deserializes_integers_and_strings() {
        let ms: Millis = serde_json::from_str("100").unwrap();
        assert_eq!(ms, Millis(100));
        let ms: Millis = serde_json::from_str("\"1.5s\"").unwrap();
        assert_eq!(ms, Millis(1_500));
        let err = serde_json::from_str::<Millis>("-5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must not be negative"), "{err}");
        let err = serde_json::from_str::<Millis>("1.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole milliseconds"), "{err}");
        let err = serde_json::from_str::<Millis>("true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"250ms\""), "{err}");
    }

    #[test]
    fn displays_the_shortest_exact_form() {
        assert_eq!(Millis(0).to_string(), "0ms");
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(3_000).to_string(), "3s");
        assert_eq!(Millis(120_000).to_string(), "2m");
        assert_eq!(Millis(7_200_000).to_string(), "2h");
        for ms in [1, 999, 1_000, 61_000, 3_600_001] {
            assert_eq!(Millis(ms).to_string().parse(), Ok(Millis(ms)));
        }
    }
}
