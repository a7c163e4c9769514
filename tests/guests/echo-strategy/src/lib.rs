//! Test fixture: a strategy that shows the host exactly what it received.
//!
//! * `on-error` answers `fail` with the event and `recent` (with 0.2's
//!   latency summary and failures in a row per kind) as JSON (see
//!   [`echo`]), so host tests can check what reaches a plugin, e.g. that
//!   secrets were redacted from the message and tags.
//! * With the tag `echo-route = "N"`, `on-error` answers `retry-on`
//!   upstream N instead (routing, contract 0.2), whether or not N is one
//!   of the call's upstreams: how host tests check a bad route.
//! * `admit` allows with no lease, unless the call has the tag
//!   `echo-admit = "reject"`: then it rejects with the call as JSON.
//! * Both hooks exercise the host imports: `state::increment("calls")`
//!   (its value is echoed as `calls`), `log::info` and the counter
//!   `echo_calls`.
//!
//! Config: none (`{}`). Hooks: admit and on-error.

use mender_guest::prelude::*;
use serde_json::{Value, json};

struct EchoStrategy;

/// Count this hook call in every host facility; returns the count so far.
fn touch_host(hook: &str, operation: &str) -> i64 {
    let calls = state::increment("calls", 1, None);
    mender_guest::info!("echo-strategy: {hook} {operation} (call {calls})");
    metrics::counter_add("echo_calls", 1);
    calls
}

fn tags(tags: &[(String, String)]) -> Value {
    tags.iter().map(|(k, v)| json!([k, v])).collect()
}

fn outcomes(recent: &Outcomes) -> Value {
    let by_kind: serde_json::Map<String, Value> = recent
        .failures_by_kind()
        .iter()
        .map(|(kind, n)| (kind.name().to_owned(), json!(n)))
        .collect();
    let streaks: serde_json::Map<String, Value> = recent
        .consecutive_failures_by_kind()
        .iter()
        .map(|(kind, n)| (kind.name().to_owned(), json!(n)))
        .collect();
    let latency = recent.latency();
    json!({
        "successes": recent.successes,
        "failures": recent.failures,
        "failures-by-kind": by_kind,
        "consecutive-failures": recent.consecutive_failures,
        "success-latency-total": recent.success_latency_total,
        "leased-attempts": recent.leased_attempts,
        "latency": {
            "count": latency.count,
            "sum": latency.sum,
            "sum-of-squares": latency.sum_of_squares,
            "span": latency.span,
        },
        "consecutive-failures-by-kind": streaks,
    })
}

/// The event as JSON: every field under its WIT name, tags as `[key, value]`
/// pairs in order, plus `recent` and the `calls` counter from state.
fn echo(event: &ErrorEvent, recent: &Outcomes, calls: i64) -> String {
    json!({
        "service": event.service(),
        "operation": event.operation(),
        "kind": event.kind.name(),
        "message": event.message(),
        "status": event.status,
        "retry-after": event.retry_after,
        "attempt": event.attempt,
        "elapsed": event.elapsed,
        "deadline-left": event.deadline_left,
        "idempotent": event.idempotent,
        "tags": tags(event.tags()),
        "upstreams": event.upstreams(),
        "upstream": event.upstream(),
        "recent": outcomes(recent),
        "calls": calls,
    })
    .to_string()
}

impl Strategy for EchoStrategy {
    type Config = NoConfig;

    fn init(_config: NoConfig) -> Result<Self, String> {
        Ok(EchoStrategy)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn admit(&self, call: &CallInfo, recent: &Outcomes) -> Admission {
        let calls = touch_host("admit", call.operation());
        if call.tag("echo-admit") != Some("reject") {
            return Admission::allow();
        }
        let reason = json!({
            "service": call.service(),
            "operation": call.operation(),
            "attempt": call.attempt,
            "elapsed": call.elapsed,
            "deadline-left": call.deadline_left,
            "idempotent": call.idempotent,
            "tags": tags(call.tags()),
            "recent": outcomes(recent),
            "calls": calls,
        });
        Admission::reject(reason.to_string(), None)
    }

    fn on_error(&self, event: &ErrorEvent, recent: &Outcomes) -> Decision {
        let calls = touch_host("on-error", event.operation());
        if let Some(to) = event.tag("echo-route").and_then(|n| n.parse().ok()) {
            return Decision::retry_on(to, 0);
        }
        Decision::fail(echo(event, recent, calls))
    }
}

mender_guest::export_strategy!(EchoStrategy);

#[cfg(test)]
mod tests {
    use super::*;
    use mender_guest::testing::error_event;

    #[test]
    fn echoes_every_field() {
        let mut event = error_event(ErrorKind::RateLimited, 2)
            .with_tags(vec![("quota".into(), "0".into())])
            .with_upstreams(vec!["a".into(), "b".into()], Some(1));
        event.status = Some(429);
        let mut recent =
            Outcomes::default().with_failures_by_kind(vec![(ErrorKind::RateLimited, 1)]);
        recent.failures = 1;
        let recent = recent
            .with_latency(LatencySummary {
                count: 1,
                sum: 5,
                sum_of_squares: 25,
                span: 100,
            })
            .with_consecutive_failures_by_kind(vec![(ErrorKind::RateLimited, 1)]);
        let value: Value = serde_json::from_str(&echo(&event, &recent, 7)).unwrap();
        assert_eq!(value["kind"], "rate-limited");
        assert_eq!(value["status"], 429);
        assert_eq!(value["retry-after"], Value::Null);
        assert_eq!(value["tags"], json!([["quota", "0"]]));
        assert_eq!(value["recent"]["failures-by-kind"]["rate-limited"], 1);
        assert_eq!(value["recent"]["latency"]["sum-of-squares"], 25);
        assert_eq!(
            value["recent"]["consecutive-failures-by-kind"]["rate-limited"],
            1
        );
        assert_eq!(value["calls"], 7);
        assert_eq!(value["upstreams"], json!(["a", "b"]));
        assert_eq!(value["upstream"], 1);
    }
}
