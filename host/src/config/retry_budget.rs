//! The retry budget as configured: a guardrail that caps retries on a
//! service at a share of its calls over a window, with a floor. How it is
//! counted (per process, pushed to the state store) is
//! `pipeline/retry_budget.rs`.

use std::time::Duration;

use serde::Deserialize;

/// A retry budget, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    /// Retries may be this percentage of calls in the window.
    pub percent: u32,
    /// Retries always allowed per window, whatever the percentage: a quiet
    /// service can still retry.
    pub min_retries: u32,
    /// The accounting window.
    pub window: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        // Finagle's defaults (20 % of requests, 10 retries per second
        // minimum, 10 s TTL), with the floor per window instead of per
        // second: a budget that still lets a quiet service retry, and caps
        // a struggling one at 1.2x its calls.
        RetryBudget {
            percent: 20,
            min_retries: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// `retry-budget` as written: `"off"` or a table; unset keys take the
/// defaults of [`RetryBudget`].
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RetryBudgetToml {
    /// `"off"`: no budget (a service can turn off a global one).
    Off(String),
    /// A budget.
    On(BudgetTable),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BudgetTable {
    percent: Option<u32>,
    min_retries: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
}

impl RetryBudgetToml {
    pub(crate) fn resolve(&self) -> Result<Option<RetryBudget>, String> {
        match self {
            RetryBudgetToml::Off(s) if s.eq_ignore_ascii_case("off") => Ok(None),
            RetryBudgetToml::Off(s) => Err(format!(
                "retry-budget must be \"off\" or a table like {{ percent = 20 }}, not `{s}`"
            )),
            RetryBudgetToml::On(t) => {
                let d = RetryBudget::default();
                let b = RetryBudget {
                    percent: t.percent.unwrap_or(d.percent),
                    min_retries: t.min_retries.unwrap_or(d.min_retries),
                    window: t.window.unwrap_or(d.window),
                };
                if b.percent > 1000 {
                    return Err(format!(
                        "retry-budget percent must be at most 1000 (got {})",
                        b.percent
                    ));
                }
                if b.window < Duration::from_millis(100) {
                    return Err("retry-budget window must be at least 100ms".into());
                }
                Ok(Some(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_forms() {
        let on: RetryBudgetToml =
            toml::from_str::<toml::Table>("b = { percent = 50 }").unwrap()["b"]
                .clone()
                .try_into()
                .unwrap();
        let b = on.resolve().unwrap().unwrap();
        assert_eq!((b.percent, b.min_retries), (50, 10));
        let off = RetryBudgetToml::Off("off".into());
        assert_eq!(off.resolve().unwrap(), None);
        let e = RetryBudgetToml::Off("sometimes".into())
            .resolve()
            .unwrap_err();
        assert!(e.contains("\"off\" or a table"), "{e}");
    }
}
