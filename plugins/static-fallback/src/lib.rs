//! Static fallback: when a call fails for good, answer with a body fixed in
//! the config for its operation, or a default. See README.md.

use std::collections::BTreeMap;

use mender_guest::prelude::*;
use serde::Deserialize;

/// A configured answer: a string is used verbatim; any other value (a TOML
/// table, array, number...) is sent as its JSON encoding.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Text(String),
    Json(serde_json::Value),
}

impl Body {
    fn into_text(self) -> String {
        match self {
            Body::Text(text) => text,
            Body::Json(value) => value.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Config {
    /// Operation -> body. A key ending in `*` matches every operation that
    /// starts with the rest of it.
    #[serde(default)]
    operations: BTreeMap<String, Body>,
    /// The body for operations no key matches. None by default: an invented
    /// answer to an operation nobody configured would mislead the agent more
    /// than the failure does.
    #[serde(default)]
    default: Option<Body>,
}

/// Which body answers which operation.
#[derive(Debug, Default)]
struct Answers {
    exact: BTreeMap<String, String>,
    /// (prefix, body), longest prefix first.
    prefixes: Vec<(String, String)>,
    default: Option<String>,
}

impl Answers {
    fn new(config: Config) -> Answers {
        let mut answers = Answers {
            default: config.default.map(Body::into_text),
            ..Answers::default()
        };
        for (key, body) in config.operations {
            match key.strip_suffix('*') {
                Some(prefix) => answers.prefixes.push((prefix.to_owned(), body.into_text())),
                None => {
                    answers.exact.insert(key, body.into_text());
                }
            }
        }
        answers
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        answers
    }

    /// The body for `operation`: an exact key, else the longest matching
    /// prefix, else the default.
    fn find(&self, operation: &str) -> Option<&str> {
        self.exact
            .get(operation)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(prefix, _)| operation.starts_with(prefix.as_str()))
                    .map(|(_, body)| body)
            })
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

struct StaticFallback {
    answers: Answers,
}

impl FallbackHandler for StaticFallback {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if config.operations.is_empty() && config.default.is_none() {
            return Err(
                "invalid config: static-fallback needs `operations` or `default`, or it never \
                 answers"
                    .into(),
            );
        }
        Ok(StaticFallback {
            answers: Answers::new(config),
        })
    }

    fn serve(
        &self,
        event: &ErrorEvent,
        _recorded: Option<&RecordedResult>,
    ) -> Option<FallbackAnswer> {
        let body = self.answers.find(event.operation())?;
        mender_guest::debug!("answering {} with its static fallback", event.operation());
        Some(FallbackAnswer::fresh(body))
    }
}

mender_guest::export_fallback!(StaticFallback);

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(json: &str) -> Answers {
        Answers::new(mender_guest::config::parse(json).unwrap())
    }

    #[test]
    fn exact_then_longest_prefix_then_default() {
        let answers = answers(
            r#"{"operations": {
                "tools/call:search": "[]",
                "tools/call:*": {"content": [], "isError": false},
                "tools/*": "generic",
                "GET /status": "ok"},
               "default": "{}"}"#,
        );
        assert_eq!(answers.find("tools/call:search"), Some("[]"));
        assert_eq!(
            answers.find("tools/call:create_issue"),
            Some(r#"{"content":[],"isError":false}"#)
        );
        assert_eq!(answers.find("tools/list"), Some("generic"));
        assert_eq!(answers.find("GET /status"), Some("ok"));
        assert_eq!(answers.find("GET /repos"), Some("{}"));
    }

    #[test]
    fn no_default_means_no_answer() {
        let answers = answers(r#"{"operations": {"a": "x"}}"#);
        assert_eq!(answers.find("b"), None);
    }

    #[test]
    fn a_config_that_never_answers_is_rejected() {
        let config = mender_guest::config::parse::<Config>("{}").unwrap();
        let err = StaticFallback::init(config).err().unwrap();
        assert!(err.contains("needs `operations` or `default`"), "{err}");
        let err = mender_guest::config::parse::<Config>(r#"{"operation": {}}"#).unwrap_err();
        assert!(err.contains("unknown field `operation`"), "{err}");
    }
}
