//! Reading a plugin's config from the JSON text the host passes to `init`.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Parse `json` (the plugin's table from `mender.toml`) into `T`.
///
/// Empty text counts as `{}`. A failure reads `invalid config: ` followed by
/// serde's message, which names the offending field and what was expected.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|err| format!("invalid config: {err}"))
}

/// A config for plugins that take no settings: only `{}` is accepted, so a
/// misplaced key in `mender.toml` is reported instead of ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Millis;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        max_delay: Millis,
    }

    #[test]
    fn empty_text_is_an_empty_table() {
        assert_eq!(
            parse::<Sample>(""),
            Ok(Sample {
                max_delay: Millis(0)
            })
        );
        assert_eq!(parse::<NoConfig>(" {} "), Ok(NoConfig {}));
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<Sample>(r#"{"max-dealy": 5}"#).unwrap_err();
        assert!(
            err.starts_with("invalid config: unknown field `max-dealy`"),
            "{err}"
        );
        let err = parse::<Sample>(r#"{"max-delay": "5 parsecs"}"#).unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
        let err = parse::<NoConfig>(r#"{"x": 1}"#).unwrap_err();
        assert!(err.contains("unknown field `x`"), "{err}");
    }
}
