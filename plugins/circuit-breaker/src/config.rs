//! The breaker's config, its defaults, and validation.

use mender_guest::prelude::*;
use serde::Deserialize;

/// The `[plugins.circuit-breaker]` table of `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Open after this many counted failures in a row; 0 turns this off.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Open when at least this share of the calls in `window` failed; none
    /// (the default) turns this off.
    #[serde(default)]
    pub failure_ratio: Option<f64>,
    /// The sliding window the failure ratio is measured over.
    #[serde(default = "default_window")]
    pub window: Millis,
    /// The ratio is only judged once the window holds this many calls.
    #[serde(default = "default_minimum_calls")]
    pub minimum_calls: u32,
    /// How long the circuit stays open before it lets probes through.
    #[serde(default = "default_open_for")]
    pub open_for: Millis,
    /// How many attempts a half-open circuit lets through.
    #[serde(default = "default_half_open_probes")]
    pub half_open_probes: u32,
    /// The failure kinds that count against the service.
    #[serde(default = "default_counted_kinds")]
    pub counted_kinds: Vec<ErrorKind>,
    /// How long the host may admit attempts on a closed circuit without
    /// asking; 0: ask before every attempt.
    #[serde(default = "default_lease")]
    pub lease: Millis,
    /// A success slower than this is a slow call (see `slow.rs`); none
    /// (the default) turns the slow-call trigger off.
    #[serde(default)]
    pub slow_call_threshold: Option<Millis>,
    /// Open when at least this share of the calls in `window` were slow.
    #[serde(default)]
    pub slow_call_rate: Option<f64>,
}

// 5 in a row: one or two failures are routine noise on any network; five
// consecutive ones mean the service is down, not unlucky.
fn default_failure_threshold() -> u32 {
    5
}

// 10s: long enough to hold a meaningful sample at agent call rates, short
// enough that failures from a past incident do not linger.
fn default_window() -> Millis {
    Millis::from_secs(10)
}

// 10 calls: below that a ratio is mostly noise (1 failure in 2 calls is 50%).
fn default_minimum_calls() -> u32 {
    10
}

// 30s: the usual time for a restarted or autoscaled service to come back,
// and long enough to take real load off a struggling one.
fn default_open_for() -> Millis {
    Millis::from_secs(30)
}

// 1 probe: a single attempt tells whether the service is back, without
// sending a burst at a service that may still be down.
fn default_half_open_probes() -> u32 {
    1
}

// Failures that say the service is unhealthy. Auth and tool errors say the
// request was wrong, cancellations are the caller's, and rejections never
// reached the service, so none of those trip the breaker.
fn default_counted_kinds() -> Vec<ErrorKind> {
    vec![
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Resource,
        ErrorKind::Protocol,
        ErrorKind::Unknown,
    ]
}

// 5s: successes on a closed circuit cost no Wasm call while the lease holds,
// and reach the ratio window at most this late. The lease ends at the first
// failure anyway, so failures are seen at once.
fn default_lease() -> Millis {
    Millis::from_secs(5)
}

impl Config {
    /// Reject configs that cannot work, saying why.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |why: String| Err(format!("invalid config: {why}"));
        crate::slow::validate(self)?;
        if self.failure_threshold == 0
            && self.failure_ratio.is_none()
            && self.slow_call_rate.is_none()
        {
            return bad(
                "failure-threshold is 0 and failure-ratio is unset: nothing would open \
                        the circuit"
                    .into(),
            );
        }
        if let Some(ratio) = self.failure_ratio
            && !(ratio > 0.0 && ratio <= 1.0)
        {
            return bad(format!("failure-ratio must be in (0, 1], got {ratio}"));
        }
        if self.window.get() < crate::window::BUCKETS {
            return bad(format!(
                "window must be at least {}ms, got {}",
                crate::window::BUCKETS,
                self.window
            ));
        }
        if self.minimum_calls == 0 {
            return bad("minimum-calls must be at least 1".into());
        }
        if self.open_for.get() == 0 {
            return bad("open-for must be longer than 0ms".into());
        }
        if self.half_open_probes == 0 {
            return bad("half-open-probes must be at least 1, or the circuit never closes".into());
        }
        if self.counted_kinds.is_empty() {
            return bad("counted-kinds is empty: nothing would open the circuit".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<(), String> {
        mender_guest::config::parse::<Config>(json)?.validate()
    }

    #[test]
    fn defaults_are_valid() {
        let config: Config = mender_guest::config::parse("{}").unwrap();
        assert_eq!(config.failure_threshold, 5);
        assert_eq!(config.failure_ratio, None);
        assert_eq!(config.open_for, Millis::from_secs(30));
        assert!(!config.counted_kinds.contains(&ErrorKind::Auth));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            (r#"{"failure-threshold": 0}"#, "nothing would open"),
            (
                r#"{"failure-ratio": 1.5}"#,
                "failure-ratio must be in (0, 1]",
            ),
            (r#"{"failure-ratio": 0}"#, "failure-ratio must be in (0, 1]"),
            (r#"{"window": "5ms"}"#, "window must be at least 10ms"),
            (
                r#"{"minimum-calls": 0}"#,
                "minimum-calls must be at least 1",
            ),
            (r#"{"open-for": 0}"#, "open-for must be longer"),
            (r#"{"half-open-probes": 0}"#, "never closes"),
            (r#"{"counted-kinds": []}"#, "counted-kinds is empty"),
            (
                r#"{"counted-kinds": ["dns"]}"#,
                "unknown error kind \"dns\"",
            ),
            (r#"{"threshold": 3}"#, "unknown field `threshold`"),
        ];
        for (json, expected) in cases {
            let err = validate(json).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
        assert_eq!(
            validate(r#"{"failure-threshold": 0, "failure-ratio": 0.5}"#),
            Ok(())
        );
    }
}
