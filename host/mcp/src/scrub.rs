//! Secrets out of everything the gateway writes to its client. The
//! gateway's own words (its error texts, `_meta`, JSON-RPC errors it
//! passes on) go through the runtime's full redactor; an upstream's
//! results go through what `redact-results` chooses: by default only the
//! secrets the config handed the server (its `env`, `args` and `headers`
//! credentials) and the OAuth tokens the gateway obtained for it are taken
//! out, since pattern-based redaction would mangle legitimate output
//! (`key: value` in a YAML file a tool returns).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rmcp::model::ErrorData;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::RedactResults;
use mender::Runtime;

/// The credentials one server was given, longest first: those its config
/// hands it, and the tokens learnt while it runs (OAuth), added as they
/// arrive. Clones share the list.
#[derive(Clone, Default)]
pub(crate) struct ServerSecrets(Arc<ArcSwap<Vec<String>>>);

impl ServerSecrets {
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> ServerSecrets {
        let secrets = ServerSecrets::default();
        for value in values {
            secrets.add(&value);
        }
        secrets
    }

    /// The list now.
    pub(crate) fn get(&self) -> Arc<Vec<String>> {
        self.0.load_full()
    }

    /// Adds `secret` unless it is known or too short to redact (shorter
    /// values would destroy text without protecting anything; the
    /// runtime's redactor draws the same line).
    pub(crate) fn add(&self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        self.0.rcu(|list| {
            let mut list = Vec::clone(list);
            if !list.iter().any(|s| s == secret) {
                list.push(secret.to_owned());
                list.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
            list
        });
    }
}

/// Replaces each registered secret (longest first) in `text`.
pub(crate) fn secrets_only(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), mender::REDACTED);
        }
    }
    out
}

/// The gateway's own text, redacted fully.
pub(crate) fn text(rt: &Runtime, secrets: &[String], text: &str) -> String {
    rt.redact(&secrets_only(text, secrets))
}

/// A JSON-RPC error for the client: message and data redacted fully.
pub(crate) fn error(rt: &Runtime, secrets: &[String], mut e: ErrorData) -> ErrorData {
    e.message = text(rt, secrets, &e.message).into();
    if let Some(data) = e.data.as_mut() {
        walk(data, &|s| text(rt, secrets, s));
    }
    e
}

/// An upstream's result as `mode` says, every string in it (content,
/// structured content, `_meta`). A value that does not survive the round
/// trip through JSON is returned unchanged rather than lost.
pub(crate) fn result<T: Serialize + DeserializeOwned>(
    rt: &Runtime,
    secrets: &[String],
    mode: RedactResults,
    value: T,
) -> T {
    let redact: Box<dyn Fn(&str) -> String> = match mode {
        RedactResults::None => return value,
        RedactResults::Secrets if secrets.is_empty() => return value,
        RedactResults::Secrets => Box::new(|s| secrets_only(s, secrets)),
        RedactResults::All => Box::new(|s| text(rt, secrets, s)),
    };
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    if !walk(&mut json, &*redact) {
        return value;
    }
    serde_json::from_value(json).unwrap_or(value)
}

/// Only the registered secrets, for what the gateway passes on unasked
/// (log messages).
pub(crate) fn result_secrets<T: Serialize + DeserializeOwned>(secrets: &[String], value: T) -> T {
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    if !walk(&mut json, &|s| secrets_only(s, secrets)) {
        return value;
    }
    serde_json::from_value(json).unwrap_or(value)
}

/// Redacts every string (keys are names, not data); `true` if any changed.
fn walk(value: &mut Value, redact: &dyn Fn(&str) -> String) -> bool {
    match value {
        Value::String(s) => {
            let r = redact(s);
            let changed = r != *s;
            *s = r;
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |c, v| walk(v, redact) | c),
        Value::Object(map) => map.values_mut().fold(false, |c, v| walk(v, redact) | c),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_secrets_grow_longest_first_and_are_shared_by_clones() {
        let secrets = ServerSecrets::new(["abcd".to_owned(), "ab".to_owned()]);
        let clone = secrets.clone();
        clone.add("abcdefgh");
        clone.add("abcd");
        assert_eq!(
            *secrets.get(),
            vec!["abcdefgh".to_owned(), "abcd".to_owned()]
        );
        assert_eq!(
            secrets_only("x abcdefgh y", &secrets.get()),
            "x [REDACTED] y"
        );
    }
    use serde_json::json;

    #[test]
    fn only_the_registered_secrets_by_default() {
        let secrets = vec!["sk-live-abcdef".to_owned()];
        let rt = Runtime::builder().build().unwrap();
        let v = json!({"content": [{"type": "text", "text": "key: value, token sk-live-abcdef"}]});
        let out = result(&rt, &secrets, RedactResults::Secrets, v.clone());
        assert_eq!(out["content"][0]["text"], "key: value, token [REDACTED]");
        assert_eq!(result(&rt, &secrets, RedactResults::None, v.clone()), v);
    }
}
