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
//! ([`StateStore::take_retry`](crate::host::state::StateStore::take_retry)): one
//! atomic Lua script, one round trip, on Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::RetryBudget;
use crate::config::guardrails::RetryRefusal;
use crate::host::HostShared;
use crate::host::state::{RetryAsk, ScopedKey};

/// The `plugin` part of the budget's keys. The `@` marks it as the host's
/// own, apart from plugin names (which are config table names).
const OWNER: &str = "@retry-budget";

/// How often a process pushes its call count to the store at most. A
/// tenth of a second keeps Redis traffic to ten writes a second per
/// service per process, and the fleet's view of calls at most that stale.
const FLUSH_EVERY_MS: u64 = 100;

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

    /// Counts a call of `service` against its budget `b`.
    pub(crate) fn count_call(&self, shared: &HostShared, service: &Arc<str>, b: &RetryBudget) {
        let ledger = self.ledger(service);
        ledger.pending_calls.fetch_add(1, Ordering::AcqRel);
        let now = shared.now_ms();
        let last = ledger.last_flush_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FLUSH_EVERY_MS
            && ledger
                .last_flush_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            flush(shared, service, &ledger, b);
        }
    }

    /// Takes one retry from `service`'s budget `b`, or says why not.
    pub(crate) fn spend_retry(
        &self,
        shared: &HostShared,
        service: &Arc<str>,
        b: &RetryBudget,
    ) -> Result<(), RetryRefusal> {
        let ledger = self.ledger(service);
        let now = shared.now_ms();
        ledger.last_flush_ms.store(now, Ordering::Relaxed);
        let window_ms = crate::host::clock::duration_ms(b.window).max(1);
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
        let take = shared.state.take_retry(ask, now);
        if take.taken {
            return Ok(());
        }
        Err(RetryRefusal::BudgetExhausted {
            retries: take.retries,
            calls: take.calls,
            budget: *b,
        })
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
    let window_ms = crate::host::clock::duration_ms(b.window).max(1);
    let pending = ledger.pending_calls.swap(0, Ordering::AcqRel);
    let delta = i64::try_from(pending).unwrap_or(i64::MAX);
    // Keys live two windows, so a late process still finds the window.
    let ttl = Some(window_ms.saturating_mul(2));
    shared
        .state
        .increment(key(service, "calls", now / window_ms), delta, ttl, now);
}
