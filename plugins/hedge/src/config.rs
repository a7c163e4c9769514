//! The hedge's config, its defaults, and validation.

use std::str::FromStr;

use mender_guest::prelude::*;
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The plugin's `config` table in `mender.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// When to start a hedge: a fixed delay, or `"auto"` (estimated from
    /// the service's latencies).
    #[serde(default)]
    pub after: After,
    /// Hedges per attempt at most.
    #[serde(default = "default_max")]
    pub max: u32,
    /// `auto`: how many standard deviations above the mean latency.
    #[serde(default = "default_k")]
    pub k: f64,
    /// `auto`: never hedge sooner than this.
    #[serde(default = "default_min_after")]
    pub min_after: Millis,
    /// `auto`: never later than this (also the delay before any latency
    /// is known).
    #[serde(default = "default_max_after")]
    pub max_after: Millis,
    /// `auto`: how many recent successes the estimate weighs (older ones
    /// fade out).
    #[serde(default = "default_window")]
    pub window: u32,
    /// How long the host reuses a grant without asking again (a lease);
    /// `auto` re-estimates this often. `0ms`: ask before every attempt.
    #[serde(default = "default_refresh")]
    pub refresh: Millis,
}

/// When a hedge starts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum After {
    /// This long after the attempt started.
    Fixed(Millis),
    /// Mean + k·σ of the service's recent latencies, within bounds.
    #[default]
    Auto,
}

impl<'de> Deserialize<'de> for After {
    /// `"auto"`, or a duration (`"50ms"`, or a number of milliseconds).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<After, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(ms) => Ok(After::Fixed(Millis(ms))),
            Raw::Text(t) if t == "auto" => Ok(After::Auto),
            Raw::Text(t) => Millis::from_str(&t).map(After::Fixed).map_err(|e| {
                de::Error::custom(format!(
                    "after: `{t}` is neither \"auto\" nor a duration: {e}"
                ))
            }),
        }
    }
}

// One hedge: most of a tail's cut at most twice the load (Dean & Barroso,
// "The Tail at Scale"); the host's max-hedges caps it anyway.
fn default_max() -> u32 {
    1
}

// Three standard deviations: for latencies near normal, about the 99.9th
// percentile, so one attempt in a thousand is hedged when nothing is wrong.
fn default_k() -> f64 {
    3.0
}

// 10 ms: sooner, a hedge races the first attempt's own network round trip.
fn default_min_after() -> Millis {
    Millis(10)
}

// 1 s: past this a slow attempt is better served by a timeout and a retry
// than by waiting longer to hedge.
fn default_max_after() -> Millis {
    Millis::from_secs(1)
}

// 1000 successes: a steady estimate that still follows a change within a
// few seconds of busy traffic.
fn default_window() -> u32 {
    1_000
}

// 1 s: the estimate moves with the traffic, at one Wasm call a second.
fn default_refresh() -> Millis {
    Millis::from_secs(1)
}

impl Config {
    /// Checks the values together; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max == 0 {
            return Err("max must be at least 1 (to turn hedging off, remove the plugin)".into());
        }
        if self.after == After::Fixed(Millis::ZERO) {
            return Err("after must be more than 0ms (0 would start every hedge at once)".into());
        }
        if !(self.k.is_finite() && self.k >= 0.0) {
            return Err(format!("k must be a number of at least 0, not {}", self.k));
        }
        if self.min_after > self.max_after {
            return Err(format!(
                "min-after ({}) is more than max-after ({})",
                self.min_after, self.max_after
            ));
        }
        if self.window == 0 {
            return Err("window must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        let c: Config = mender_guest::config::parse(json)?;
        c.validate().map(|()| c)
    }

    #[test]
    fn after_is_auto_or_a_duration() {
        assert_eq!(parse("{}").unwrap().after, After::Auto);
        assert_eq!(parse(r#"{"after": "auto"}"#).unwrap().after, After::Auto);
        assert_eq!(
            parse(r#"{"after": "50ms"}"#).unwrap().after,
            After::Fixed(Millis(50))
        );
        assert_eq!(
            parse(r#"{"after": 75}"#).unwrap().after,
            After::Fixed(Millis(75))
        );
        let e = parse(r#"{"after": "soon"}"#).unwrap_err();
        assert!(e.contains("neither \"auto\" nor a duration"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse(r#"{"max": 0}"#).unwrap_err();
        assert!(e.starts_with("max must be at least 1"), "{e}");
        let e = parse(r#"{"after": "0ms"}"#).unwrap_err();
        assert!(e.starts_with("after must be more than 0ms"), "{e}");
        let e = parse(r#"{"min-after": "2s", "max-after": "1s"}"#).unwrap_err();
        assert!(
            e.contains("min-after (2s) is more than max-after (1s)"),
            "{e}"
        );
        let e = parse(r#"{"k": -1}"#).unwrap_err();
        assert!(e.starts_with("k must be"), "{e}");
        assert!(parse(r#"{"window": 0}"#).is_err());
        assert!(parse(r#"{"after": "1s", "surprise": 1}"#).is_err());
    }
}
