//! The decision for one failed attempt: a pure function of the config, the
//! event and one random number.

use std::collections::BTreeMap;

use mender_guest::prelude::*;

use crate::config::{Action, Config, Rule};
use crate::delay::{Curve, Jitter};

/// A validated config, ready to decide.
#[derive(Debug)]
pub struct Policy {
    rules: BTreeMap<ErrorKind, Rule>,
    factor: f64,
    max_delay: u64,
    jitter: Jitter,
    honor_retry_after: bool,
}

impl Policy {
    /// Validate `config`.
    pub fn new(config: &Config) -> Result<Policy, String> {
        Ok(Policy {
            rules: config.rules()?,
            factor: config.factor,
            max_delay: config.max_delay.get(),
            jitter: config.jitter,
            honor_retry_after: config.honor_retry_after,
        })
    }

    /// What to do after `event`, with `random` the jitter's randomness.
    pub fn decide(&self, event: &ErrorEvent, random: u64) -> Decision {
        let rule = self.rules[&event.kind];
        let retry = match rule.action {
            Action::Pass => return Decision::Pass,
            Action::Fail => {
                return Decision::fail(format!(
                    "{} errors are not retried: {}",
                    event.kind,
                    event.message()
                ));
            }
            Action::Retry | Action::RefreshCredentials if event.attempt >= rule.max_attempts => {
                return Decision::fail(format!(
                    "gave up after {} attempts; last error ({}): {}",
                    event.attempt,
                    event.kind,
                    event.message()
                ));
            }
            Action::RefreshCredentials => return Decision::RefreshCredentials,
            Action::Retry => rule,
        };
        let curve = Curve {
            base: retry.base,
            factor: self.factor,
            cap: self.max_delay,
        };
        let mut delay = curve.jittered(self.jitter, event.attempt, random);
        if let (true, Some(asked)) = (self.honor_retry_after, event.retry_after) {
            if asked > self.max_delay {
                return Decision::fail(format!(
                    "upstream asked to wait {} (Retry-After), longer than max-delay {}",
                    Millis(asked),
                    Millis(self.max_delay)
                ));
            }
            delay = delay.max(asked);
        }
        if let Some(left) = event.deadline_left
            && delay > left
        {
            return Decision::fail(format!(
                "the next retry, in {}, would pass the call's deadline ({} left)",
                Millis(delay),
                Millis(left)
            ));
        }
        Decision::retry_after(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::error_event;

    fn policy(json: &str) -> Policy {
        Policy::new(&mender_guest::config::parse(json).unwrap()).unwrap()
    }

    const NO_JITTER: &str = r#"{"jitter": "none"}"#;

    #[test]
    fn retries_transient_failures_with_growing_delays() {
        let policy = policy(NO_JITTER);
        let delays: Vec<Decision> = (1..5)
            .map(|n| policy.decide(&error_event(ErrorKind::Timeout, n), 0))
            .collect();
        let expected: Vec<Decision> = [100, 200, 400, 800]
            .map(Decision::Retry)
            .into_iter()
            .collect();
        assert_eq!(delays, expected);
    }

    #[test]
    fn gives_up_at_max_attempts() {
        let decision = policy(NO_JITTER).decide(&error_event(ErrorKind::Connect, 5), 0);
        let Decision::Fail(reason) = decision else {
            panic!("expected a failure, got {decision:?}");
        };
        assert!(reason.starts_with("gave up after 5 attempts"), "{reason}");
        assert!(reason.contains("(connect): connect failure"), "{reason}");
    }

    #[test]
    fn passes_on_kinds_it_has_no_opinion_about() {
        let policy = policy("{}");
        for kind in [
            ErrorKind::Auth,
            ErrorKind::Tool,
            ErrorKind::Cancelled,
            ErrorKind::Rejected,
        ] {
            assert_eq!(policy.decide(&error_event(kind, 1), 0), Decision::Pass);
        }
    }

    #[test]
    fn per_kind_actions_apply() {
        let policy = policy(
            r#"{"jitter": "none", "kinds": {
                "auth": {"action": "refresh-credentials", "max-attempts": 2},
                "tool": {"action": "fail"},
                "timeout": {"action": "pass"},
                "rate-limited": {"base": "2s", "max-attempts": 3}}}"#,
        );
        let auth = |n| policy.decide(&error_event(ErrorKind::Auth, n), 0);
        assert_eq!(auth(1), Decision::RefreshCredentials);
        assert!(matches!(auth(2), Decision::Fail(r) if r.starts_with("gave up after 2")));
        let tool = policy.decide(&error_event(ErrorKind::Tool, 1), 0);
        assert!(matches!(tool, Decision::Fail(r) if r.starts_with("tool errors are not retried")));
        let timeout = policy.decide(&error_event(ErrorKind::Timeout, 1), 0);
        assert_eq!(timeout, Decision::Pass);
        let limited = |n| policy.decide(&error_event(ErrorKind::RateLimited, n), 0);
        assert_eq!(limited(2), Decision::Retry(4_000));
        assert!(matches!(limited(3), Decision::Fail(_)));
    }

    #[test]
    fn honors_retry_after_up_to_max_delay() {
        let policy = policy(NO_JITTER);
        let mut event = error_event(ErrorKind::RateLimited, 1);
        event.retry_after = Some(5_000);
        assert_eq!(policy.decide(&event, 0), Decision::Retry(5_000));
        // A hint shorter than the backoff does not shorten it.
        event.retry_after = Some(10);
        assert_eq!(policy.decide(&event, 0), Decision::Retry(100));
        event.retry_after = Some(60_000);
        let Decision::Fail(reason) = policy.decide(&event, 0) else {
            panic!("expected a failure");
        };
        assert_eq!(
            reason,
            "upstream asked to wait 1m (Retry-After), longer than max-delay 30s"
        );
    }

    #[test]
    fn can_ignore_retry_after() {
        let policy = policy(r#"{"jitter": "none", "honor-retry-after": false}"#);
        let mut event = error_event(ErrorKind::RateLimited, 2);
        event.retry_after = Some(60_000);
        assert_eq!(policy.decide(&event, 0), Decision::Retry(200));
    }

    #[test]
    fn fails_rather_than_retry_past_the_deadline() {
        let policy = policy(NO_JITTER);
        let mut event = error_event(ErrorKind::Timeout, 3);
        event.deadline_left = Some(400);
        assert_eq!(policy.decide(&event, 0), Decision::Retry(400));
        event.deadline_left = Some(399);
        assert!(matches!(policy.decide(&event, 0), Decision::Fail(r) if r.contains("deadline")));
    }

    #[test]
    fn jitter_comes_from_the_random_input() {
        let policy = policy("{}");
        let event = error_event(ErrorKind::Timeout, 4);
        assert_eq!(policy.decide(&event, 0), Decision::Retry(0));
        assert_eq!(policy.decide(&event, u64::MAX), Decision::Retry(800));
        let capped = Policy::new(
            &mender_guest::config::parse(r#"{"max-delay": "500ms", "jitter": "none"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(capped.decide(&event, 0), Decision::Retry(500));
    }
}
