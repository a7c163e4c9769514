//! The retry budget: a guardrail that caps retries on a service at a share
//! of its calls over a window, with a floor, like Finagle's `RetryBudget`,
//! Envoy's retry budgets and gRPC's retry throttling.
//!
//! Per-call `max-attempts` bounds one call; a budget bounds the service:
//! when an upstream is down, every call wants its retries at once and
//! multiplies the load on it. With a budget, at most `percent`% of calls
//! (or `min-retries` per window, whichever is more) are retried; the rest
//! fail (or fall back) at once, whatever a plugin asked.
//!
//! The counters live in the service's state backend under the reserved
//! owner `@retry-budget`, so on Redis the budget is fleet-wide: every
//! process's calls and retries count against one budget. Counting a call
//! costs a local atomic add; the count is pushed to the store at most every
//! [`FLUSH_EVERY_MS`] and with each retry decision, so a successful call
//! does not wait on Redis. A retry decision is one store operation
//! ([`StateStore::take_retry`](crate::state::StateStore::take_retry)): one
//! atomic Lua script, one round trip, on Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::call::Flight;
use crate::plugin::host_api::HostShared;
use crate::state::{RetryAsk, ScopedKey};

/// The `plugin` part of the budget's keys. The `@` marks it as the host's
/// own, apart from plugin names (which are config table names).
const OWNER: &str = "@retry-budget";

/// How often a process pushes its call count to the store at most. A
/// tenth of a second keeps Redis traffic to ten writes a second per
/// service per process, and the fleet's view of calls at most that stale.
const FLUSH_EVERY_MS: u64 = 100;

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

/// What this process has not pushed yet, per service.
#[derive(Default)]
struct Ledger {
    pending_calls: AtomicU64,
    last_flush_ms: AtomicU64,
}

/// Every service's ledger.
#[derive(Default)]
pub(crate) struct RetryBudgets {
    ledgers: Mutex<HashMap<Arc<str>, Arc<Ledger>>>,
}

impl RetryBudgets {
    fn ledger(&self, service: &Arc<str>) -> Arc<Ledger> {
        let mut map = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(service.clone()).or_default().clone()
    }
}

fn key(service: &Arc<str>, what: &str, window: u64) -> ScopedKey {
    ScopedKey {
        plugin: Arc::from(OWNER),
        service: service.clone(),
        key: format!("{what}:{window}"),
    }
}

/// Pushes the pending call count into the current window.
fn flush(shared: &HostShared, service: &Arc<str>, ledger: &Ledger, b: &RetryBudget) {
    let now = shared.now_ms();
    ledger.last_flush_ms.store(now, Ordering::Relaxed);
    let window_ms = crate::clock::duration_ms(b.window).max(1);
    let pending = ledger.pending_calls.swap(0, Ordering::AcqRel);
    let delta = i64::try_from(pending).unwrap_or(i64::MAX);
    // Keys live two windows, so a late process still finds the window.
    let ttl = Some(window_ms.saturating_mul(2));
    shared
        .state
        .increment(key(service, "calls", now / window_ms), delta, ttl, now);
}

impl Flight<'_> {
    /// Counts a call against the service's budget, if it has one.
    pub(crate) fn count_call(&self) {
        let Some(b) = &self.p.guardrails.retry_budget else {
            return;
        };
        let inner = &self.rt.inner;
        let ledger = inner.budgets.ledger(&self.p.service);
        ledger.pending_calls.fetch_add(1, Ordering::AcqRel);
        let now = inner.shared.now_ms();
        let last = ledger.last_flush_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FLUSH_EVERY_MS
            && ledger
                .last_flush_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            flush(&inner.shared, &self.p.service, &ledger, b);
        }
    }

    /// Takes one retry from the service's budget, or says why not.
    pub(crate) fn spend_retry(&self) -> Result<(), String> {
        let Some(b) = &self.p.guardrails.retry_budget else {
            return Ok(());
        };
        let inner = &self.rt.inner;
        let service = &self.p.service;
        let ledger = inner.budgets.ledger(service);
        let now = inner.shared.now_ms();
        ledger.last_flush_ms.store(now, Ordering::Relaxed);
        let window_ms = crate::clock::duration_ms(b.window).max(1);
        let window = now / window_ms;
        let pending = ledger.pending_calls.swap(0, Ordering::AcqRel);
        let ask = RetryAsk {
            calls: key(service, "calls", window),
            retries: key(service, "retries", window),
            new_calls: i64::try_from(pending).unwrap_or(i64::MAX),
            percent: b.percent,
            floor: b.min_retries,
            // Keys live two windows, so a late process still finds them.
            ttl_ms: window_ms.saturating_mul(2),
        };
        let take = inner.shared.state.take_retry(ask, now);
        if take.taken {
            return Ok(());
        }
        Err(format!(
            "retry-budget exhausted ({} retries for {} calls in this {} window; \
             percent {}, min-retries {})",
            take.retries,
            take.calls,
            humantime::format_duration(b.window),
            b.percent,
            b.min_retries
        ))
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
