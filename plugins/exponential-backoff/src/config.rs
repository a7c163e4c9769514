//! The plugin's config, its defaults, and the per-kind rules it resolves to.

use std::collections::BTreeMap;

use mender_guest::prelude::*;
use serde::Deserialize;

use crate::delay::Jitter;

/// The `[plugins.exponential-backoff]` table of `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The delay after the first failed attempt.
    #[serde(default = "default_base")]
    pub base: Millis,
    /// How much each delay grows over the previous one.
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// No computed delay exceeds this.
    #[serde(default = "default_max_delay")]
    pub max_delay: Millis,
    /// Give up once this many attempts have failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How delays are randomised.
    #[serde(default)]
    pub jitter: Jitter,
    /// Wait at least as long as the upstream's `Retry-After`.
    #[serde(default = "default_honor_retry_after")]
    pub honor_retry_after: bool,
    /// Per-error-kind overrides, merged over the built-in defaults.
    #[serde(default)]
    pub kinds: BTreeMap<ErrorKind, KindOverride>,
}

/// `[kinds.<kind>]`: how one kind of failure is handled.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KindOverride {
    /// What to do; the kind's default action if left out.
    pub action: Option<Action>,
    /// This kind's first delay, instead of the global `base`.
    pub base: Option<Millis>,
    /// This kind's attempt limit, instead of the global `max-attempts`.
    pub max_attempts: Option<u32>,
}

/// What to answer for a kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Retry after a backoff delay, up to the attempt limit.
    Retry,
    /// No opinion: let the next strategy in the pipeline decide.
    Pass,
    /// Fail the call now.
    Fail,
    /// Ask the host to refresh credentials and retry, up to the attempt limit.
    RefreshCredentials,
}

// 100ms: long enough to ride out a dropped connection or a leader election,
// short enough that an interactive agent does not notice the first retry.
fn default_base() -> Millis {
    Millis::from_millis(100)
}

// Doubling is the conventional curve: 5 attempts wait 100+200+400+800ms
// (1.5s) before jitter, enough for most transient faults to clear.
fn default_factor() -> f64 {
    2.0
}

// 30s: an agent's turn that waits longer than this is better served by a
// failure it can reason about; it also bounds how long Retry-After may hold
// a call.
fn default_max_delay() -> Millis {
    Millis::from_secs(30)
}

// 5 attempts: past the fourth retry a fault is rarely transient, and each
// retry costs the upstream load.
fn default_max_attempts() -> u32 {
    5
}

// The upstream knows when it will recover; retrying sooner only burns quota.
fn default_honor_retry_after() -> bool {
    true
}

/// The action for `kind` when the config does not say. Failures a retry can
/// fix are retried; auth, tool errors, the caller's own cancellation and
/// admission rejections are left to other strategies.
pub fn default_action(kind: ErrorKind) -> Action {
    match kind {
        ErrorKind::Connect
        | ErrorKind::Timeout
        | ErrorKind::RateLimited
        | ErrorKind::Resource
        | ErrorKind::Protocol
        | ErrorKind::Unknown => Action::Retry,
        ErrorKind::Auth | ErrorKind::Tool | ErrorKind::Cancelled | ErrorKind::Rejected => {
            Action::Pass
        }
    }
}

/// How one kind of failure is handled, with every default applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What to answer.
    pub action: Action,
    /// The first delay, in ms.
    pub base: u64,
    /// Give up once this many attempts have failed.
    pub max_attempts: u32,
}

impl Config {
    /// Check the numbers and resolve the rule of every kind.
    pub fn rules(&self) -> Result<BTreeMap<ErrorKind, Rule>, String> {
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!(
                "invalid config: factor must be a number >= 1, got {}",
                self.factor
            ));
        }
        let mut rules = BTreeMap::new();
        for kind in ErrorKind::ALL {
            let over = self.kinds.get(&kind);
            let rule = Rule {
                action: over.and_then(|o| o.action).unwrap_or(default_action(kind)),
                base: over.and_then(|o| o.base).unwrap_or(self.base).get(),
                max_attempts: over
                    .and_then(|o| o.max_attempts)
                    .unwrap_or(self.max_attempts),
            };
            let which = match over {
                Some(_) => format!("kinds.{kind}."),
                None => String::new(),
            };
            if rule.max_attempts == 0 {
                return Err(format!(
                    "invalid config: {which}max-attempts must be at least 1"
                ));
            }
            if rule.base > self.max_delay.get() {
                return Err(format!(
                    "invalid config: {which}base ({}) exceeds max-delay ({})",
                    Millis(rule.base),
                    self.max_delay
                ));
            }
            rules.insert(kind, rule);
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Result<BTreeMap<ErrorKind, Rule>, String> {
        mender_guest::config::parse::<Config>(json)?.rules()
    }

    #[test]
    fn defaults_retry_transient_kinds_and_pass_the_rest() {
        let rules = rules("{}").unwrap();
        let timeout = rules[&ErrorKind::Timeout];
        assert_eq!(
            timeout,
            Rule {
                action: Action::Retry,
                base: 100,
                max_attempts: 5
            }
        );
        assert_eq!(rules[&ErrorKind::Auth].action, Action::Pass);
        assert_eq!(rules[&ErrorKind::Rejected].action, Action::Pass);
        assert_eq!(rules[&ErrorKind::Unknown].action, Action::Retry);
    }

    #[test]
    fn kind_overrides_merge_over_defaults() {
        let rules = rules(
            r#"{"base": "50ms", "kinds": {
                "auth": {"action": "refresh-credentials", "max-attempts": 2},
                "rate-limited": {"base": "1s"}}}"#,
        )
        .unwrap();
        let auth = rules[&ErrorKind::Auth];
        assert_eq!(auth.action, Action::RefreshCredentials);
        assert_eq!((auth.base, auth.max_attempts), (50, 2));
        let limited = rules[&ErrorKind::RateLimited];
        assert_eq!((limited.action, limited.base), (Action::Retry, 1_000));
        assert_eq!(rules[&ErrorKind::Connect].base, 50);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = rules(r#"{"factor": 0.5}"#).unwrap_err();
        assert!(err.contains("factor must be a number >= 1"), "{err}");
        let err = rules(r#"{"max-attempts": 0}"#).unwrap_err();
        assert!(err.contains("max-attempts must be at least 1"), "{err}");
        let err = rules(r#"{"kinds": {"tool": {"base": "1m"}}}"#).unwrap_err();
        assert!(
            err.contains("kinds.tool.base (1m) exceeds max-delay (30s)"),
            "{err}"
        );
        let err = rules(r#"{"kinds": {"dns": {}}}"#).unwrap_err();
        assert!(err.contains("unknown error kind \"dns\""), "{err}");
        let err = rules(r#"{"jitter": "some"}"#).unwrap_err();
        assert!(err.contains("unknown variant `some`"), "{err}");
        let err = rules(r#"{"kinds": {"auth": {"action": "retry", "delay": 5}}}"#).unwrap_err();
        assert!(err.contains("unknown field `delay`"), "{err}");
    }
}
