//! Progress a server sent before its answer reaches the client before the
//! answer does.
//!
//! rmcp hands each incoming notification to the handler on a task of its
//! own, while an answer wakes the request's waiter directly; so a server's
//! last `notifications/progress`, written just before its answer, could be
//! forwarded after the gateway had answered the client, whose request
//! stream was then closed: the client lost it (seen as a flaky
//! `test_many_clients_each_get_their_own_answers`). The upstream's stdout
//! tap reads lines in order, so it counts each token's progress as it
//! passes ([`ProgressLedger::seen`]); the handler counts what it has
//! forwarded ([`ProgressLedger::handled`]); and a request, once answered,
//! waits until the two agree ([`ProgressLedger::settle`]), for a bounded
//! time. A remote (`url`) upstream has no tap: nothing is counted, and
//! nothing is waited for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rmcp::model::ProgressToken;
use serde_json::Value;
use tokio::sync::Notify;

/// How long an answered request waits for progress still being forwarded:
/// a handler that never runs (a line rmcp could not read) must not hold
/// the answer.
const SETTLE_LIMIT: Duration = Duration::from_millis(250);

/// Tokens kept at most: progress that arrives after its request ended is
/// counted and never settled, so the ledger forgets everything past this.
const MAX_TOKENS: usize = 10_000;

/// Each progress token's notifications, read off the wire and handled.
#[derive(Default)]
pub(crate) struct ProgressLedger {
    counts: Mutex<HashMap<ProgressToken, (u64, u64)>>,
    handled: Notify,
}

impl ProgressLedger {
    /// The tap read a line: count it if it is a progress notification.
    pub(crate) fn seen(&self, line: &[u8]) {
        if !line.windows(22).any(|w| w == b"notifications/progress") {
            return;
        }
        let Some(token) = serde_json::from_slice::<Value>(line)
            .ok()
            .filter(|m| m.get("method").and_then(Value::as_str) == Some("notifications/progress"))
            .and_then(|mut m| {
                m.get_mut("params")?
                    .get_mut("progressToken")
                    .map(Value::take)
            })
            .and_then(|t| serde_json::from_value::<ProgressToken>(t).ok())
        else {
            return;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_TOKENS && !counts.contains_key(&token) {
            counts.clear();
        }
        counts.entry(token).or_default().0 += 1;
    }

    /// The handler is done with one notification of `token` (forwarded or
    /// dropped).
    pub(crate) fn handled(&self, token: &ProgressToken) {
        if let Some(c) = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(token)
        {
            c.1 += 1;
        }
        self.handled.notify_waiters();
    }

    /// Waits (at most [`SETTLE_LIMIT`]) until every notification of
    /// `token` read so far has been handled, then forgets the token.
    pub(crate) async fn settle(&self, token: &ProgressToken) {
        let _ = tokio::time::timeout(SETTLE_LIMIT, async {
            loop {
                let handled = self.handled.notified();
                tokio::pin!(handled);
                handled.as_mut().enable();
                if self.pending(token) == 0 {
                    return;
                }
                handled.await;
            }
        })
        .await;
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    fn pending(&self, token: &ProgressToken) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .map_or(0, |(seen, handled)| seen.saturating_sub(*handled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;
    use std::sync::Arc;

    fn token(n: i64) -> ProgressToken {
        ProgressToken(NumberOrString::Number(n))
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_waits_for_the_progress_read_before_it() {
        let ledger = Arc::new(ProgressLedger::default());
        let line = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#;
        ledger.seen(line);
        ledger.seen(line);
        // Other lines are not counted.
        ledger.seen(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#);
        assert_eq!(ledger.pending(&token(7)), 2);
        let handler = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ledger.handled(&token(7));
                tokio::time::sleep(Duration::from_millis(10)).await;
                ledger.handled(&token(7));
            })
        };
        let began = tokio::time::Instant::now();
        ledger.settle(&token(7)).await;
        assert_eq!(began.elapsed(), Duration::from_millis(20));
        handler.await.unwrap();
        assert_eq!(ledger.pending(&token(7)), 0);
        // Nothing read for a token: no wait at all.
        let began = tokio::time::Instant::now();
        ledger.settle(&token(8)).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_never_runs_holds_the_answer_a_bounded_time() {
        let ledger = ProgressLedger::default();
        ledger.seen(
            br#"{"method":"notifications/progress","params":{"progressToken":"a","progress":1}}"#,
        );
        let began = tokio::time::Instant::now();
        ledger
            .settle(&ProgressToken(NumberOrString::String("a".into())))
            .await;
        assert_eq!(began.elapsed(), SETTLE_LIMIT);
    }
}
