//! What a hook is told: the failed attempt ([`ErrorEvent`]), the attempt
//! about to start ([`CallInfo`]) and the counts since the last call
//! ([`Outcomes`]).
//!
//! Contract 0.2 passes a hook only scalars; these types hold them as plain
//! fields. The strings and lists (service, operation, message, tags,
//! failures per kind) are fetched from the host the first time a method
//! asks for them, then kept, so a decision that never reads the message
//! never copies it into the plugin. Read them during the hook: the host
//! answers for the hook call in progress.
//!
//! Off wasm nothing can be fetched, so tests build these with every string
//! given ([`crate::testing`], the `with_*` methods).

use std::cell::OnceCell;

use crate::bindings::host::current;
use crate::bindings::host::types as wit;
use wit::ErrorKind;
pub use wit::LatencySummary;

/// The strings of an event or call, each fetched on first use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Strings {
    service: OnceCell<String>,
    operation: OnceCell<String>,
    message: OnceCell<String>,
    tags: OnceCell<Vec<(String, String)>>,
    upstreams: OnceCell<Vec<String>>,
    upstream: OnceCell<Option<u32>>,
}

impl Strings {
    fn service(&self) -> &str {
        self.service.get_or_init(current::service)
    }
    fn operation(&self) -> &str {
        self.operation.get_or_init(current::operation)
    }
    fn message(&self) -> &str {
        self.message.get_or_init(current::message)
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags.get_or_init(current::tags)
    }
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn upstreams(&self) -> &[String] {
        self.upstreams.get_or_init(current::upstreams)
    }
    fn upstream(&self) -> Option<u32> {
        *self.upstream.get_or_init(current::upstream)
    }
    fn set_upstreams(&mut self, names: Vec<String>, used: Option<u32>) {
        put(&mut self.upstreams, names);
        put(&mut self.upstream, used);
    }
}

/// Sets a cell that is known to be empty or is being replaced.
fn put<T>(cell: &mut OnceCell<T>, value: T) {
    *cell = OnceCell::from(value);
}

/// One failed attempt, as a strategy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEvent {
    /// The class of the failure.
    pub kind: ErrorKind,
    /// HTTP status or JSON-RPC error code, if the upstream sent one.
    pub status: Option<i32>,
    /// How long the upstream asked us to wait (`Retry-After`), if it did.
    pub retry_after: Option<u64>,
    /// Which attempt failed, from 1.
    pub attempt: u32,
    /// Milliseconds since the first attempt of this call started.
    pub elapsed: u64,
    /// Milliseconds left before the call's deadline, if it has one.
    pub deadline_left: Option<u64>,
    /// Whether repeating the operation is safe.
    pub idempotent: bool,
    strings: Strings,
    permit: OnceCell<Option<u64>>,
}

impl ErrorEvent {
    /// An event with these scalars; its strings are fetched when read.
    pub fn new(kind: ErrorKind, attempt: u32) -> ErrorEvent {
        ErrorEvent {
            kind,
            status: None,
            retry_after: None,
            attempt,
            elapsed: 0,
            deadline_left: None,
            idempotent: true,
            strings: Strings::default(),
            permit: OnceCell::new(),
        }
    }

    pub(crate) fn from_wit(e: wit::ErrorEvent) -> ErrorEvent {
        ErrorEvent {
            kind: e.kind,
            status: e.status,
            retry_after: e.retry_after,
            attempt: e.attempt,
            elapsed: e.elapsed,
            deadline_left: e.deadline_left,
            idempotent: e.idempotent,
            strings: Strings::default(),
            permit: OnceCell::new(),
        }
    }

    /// The permit this plugin's grant gave the attempt that failed, if it
    /// gave one ([`Admission::allow_with_permit`](crate::prelude::Admission::allow_with_permit)).
    pub fn permit(&self) -> Option<u64> {
        *self.permit.get_or_init(current::permit)
    }

    /// This event with its permit set (for tests).
    pub fn with_permit(mut self, permit: Option<u64>) -> ErrorEvent {
        put(&mut self.permit, permit);
        self
    }

    /// The logical upstream, e.g. `github`.
    pub fn service(&self) -> &str {
        self.strings.service()
    }
    /// What was called, e.g. `tools/call:create_issue` or `GET /repos`.
    pub fn operation(&self) -> &str {
        self.strings.operation()
    }
    /// The failure's text, with secrets already redacted by the host.
    pub fn message(&self) -> &str {
        self.strings.message()
    }
    /// Every tag, in order.
    pub fn tags(&self) -> &[(String, String)] {
        self.strings.tags()
    }
    /// The value of the first tag named `key`, if the event carries it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.strings.tag(key)
    }

    /// Routing: the call's upstreams, in the caller's order (a primary,
    /// then its backups or replicas); empty when it names none.
    pub fn upstreams(&self) -> &[String] {
        self.strings.upstreams()
    }
    /// Routing: the index into [`upstreams`](Self::upstreams) of the
    /// upstream the failed attempt used; `None` when the call names none.
    pub fn upstream(&self) -> Option<u32> {
        self.strings.upstream()
    }

    /// This event with its upstreams set, the failed attempt on `used`.
    pub fn with_upstreams(mut self, names: Vec<String>, used: Option<u32>) -> ErrorEvent {
        self.strings.set_upstreams(names, used);
        self
    }

    /// This event with its service set (for tests: off wasm nothing can be
    /// fetched).
    pub fn with_service(mut self, service: impl Into<String>) -> ErrorEvent {
        put(&mut self.strings.service, service.into());
        self
    }
    /// This event with its operation set.
    pub fn with_operation(mut self, operation: impl Into<String>) -> ErrorEvent {
        put(&mut self.strings.operation, operation.into());
        self
    }
    /// This event with its message set.
    pub fn with_message(mut self, message: impl Into<String>) -> ErrorEvent {
        put(&mut self.strings.message, message.into());
        self
    }
    /// This event with its tags set.
    pub fn with_tags(mut self, tags: Vec<(String, String)>) -> ErrorEvent {
        put(&mut self.strings.tags, tags);
        self
    }
}

/// An attempt about to start, as an admission hook sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Milliseconds since the first attempt of this call started.
    pub elapsed: u64,
    /// Milliseconds left before the call's deadline, if it has one.
    pub deadline_left: Option<u64>,
    /// Whether repeating the operation is safe.
    pub idempotent: bool,
    strings: Strings,
}

impl CallInfo {
    /// A call with these scalars; its strings are fetched when read.
    pub fn new(attempt: u32) -> CallInfo {
        CallInfo {
            attempt,
            elapsed: 0,
            deadline_left: None,
            idempotent: true,
            strings: Strings::default(),
        }
    }

    pub(crate) fn from_wit(c: wit::CallInfo) -> CallInfo {
        CallInfo {
            attempt: c.attempt,
            elapsed: c.elapsed,
            deadline_left: c.deadline_left,
            idempotent: c.idempotent,
            strings: Strings::default(),
        }
    }

    /// The logical upstream.
    pub fn service(&self) -> &str {
        self.strings.service()
    }
    /// What is about to be called.
    pub fn operation(&self) -> &str {
        self.strings.operation()
    }
    /// Every tag, in order.
    pub fn tags(&self) -> &[(String, String)] {
        self.strings.tags()
    }
    /// The value of the first tag named `key`, if the call carries it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.strings.tag(key)
    }
    /// Routing: the call's upstreams (see [`ErrorEvent::upstreams`]).
    pub fn upstreams(&self) -> &[String] {
        self.strings.upstreams()
    }
    /// Routing: the index of the upstream this attempt would use unless
    /// the grant routes it (the first, or a `retry-on`'s choice); `None`
    /// when the call names none.
    pub fn upstream(&self) -> Option<u32> {
        self.strings.upstream()
    }
    /// This call with its upstreams set, the attempt bound for `used`.
    pub fn with_upstreams(mut self, names: Vec<String>, used: Option<u32>) -> CallInfo {
        self.strings.set_upstreams(names, used);
        self
    }

    /// This call with its service set (for tests).
    pub fn with_service(mut self, service: impl Into<String>) -> CallInfo {
        put(&mut self.strings.service, service.into());
        self
    }
    /// This call with its operation set.
    pub fn with_operation(mut self, operation: impl Into<String>) -> CallInfo {
        put(&mut self.strings.operation, operation.into());
        self
    }
    /// This call with its tags set.
    pub fn with_tags(mut self, tags: Vec<(String, String)>) -> CallInfo {
        put(&mut self.strings.tags, tags);
        self
    }
}

/// What happened on a service since this plugin was last called for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Attempts that succeeded since the last report.
    pub successes: u32,
    /// Attempts that reached the upstream and failed since the last report.
    pub failures: u32,
    /// Failed attempts in a row on this service right now (not a delta).
    pub consecutive_failures: u32,
    /// Sum of the latencies of the successes counted here, in milliseconds.
    pub success_latency_total: u64,
    /// Attempts this plugin's current lease let start without asking it.
    pub leased_attempts: u32,
    by_kind: OnceCell<Vec<(ErrorKind, u32)>>,
    latency: OnceCell<LatencySummary>,
    streaks: OnceCell<Vec<(ErrorKind, u32)>>,
    in_flight: OnceCell<u32>,
    slow_calls: OnceCell<u32>,
    permitted: OnceCell<Vec<u64>>,
}

impl Outcomes {
    pub(crate) fn from_wit(o: wit::Outcomes) -> Outcomes {
        let mut out = Outcomes {
            successes: o.successes,
            failures: o.failures,
            consecutive_failures: o.consecutive_failures,
            success_latency_total: o.success_latency_total,
            leased_attempts: o.leased_attempts,
            by_kind: OnceCell::new(),
            latency: OnceCell::new(),
            streaks: OnceCell::new(),
            in_flight: OnceCell::new(),
            slow_calls: OnceCell::new(),
            permitted: OnceCell::new(),
        };
        // No success, no slow call and no permitted success.
        if o.successes == 0 {
            put(&mut out.slow_calls, 0);
            put(&mut out.permitted, Vec::new());
        }
        // No failure, no list; none in a row, no streaks: nothing to fetch.
        if o.failures == 0 {
            put(&mut out.by_kind, Vec::new());
        }
        if o.consecutive_failures == 0 {
            put(&mut out.streaks, Vec::new());
        }
        out
    }

    /// Failures since the last report, per kind; kinds with no failure are
    /// left out.
    pub fn failures_by_kind(&self) -> &[(ErrorKind, u32)] {
        self.by_kind.get_or_init(current::failures_by_kind)
    }

    /// Failures of `kind` in this report.
    pub fn failures_of(&self, kind: ErrorKind) -> u32 {
        self.failures_among(&[kind])
    }

    /// Failures in this report whose kind is in `kinds`.
    pub fn failures_among(&self, kinds: &[ErrorKind]) -> u32 {
        if self.failures == 0 {
            return 0;
        }
        self.failures_by_kind()
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(_, n)| *n)
            .sum()
    }

    /// The latencies of the successes counted here (count, sum, sum of
    /// squares) and the host time this report covers.
    pub fn latency(&self) -> &LatencySummary {
        self.latency.get_or_init(current::latency)
    }

    /// The mean latency of the successes counted here, if there were any.
    pub fn mean_latency(&self) -> Option<f64> {
        let l = self.latency();
        (l.count > 0).then(|| l.sum as f64 / f64::from(l.count))
    }

    /// Failed attempts of `kind` in a row on the service right now: zero
    /// after any success (not a delta).
    pub fn consecutive_failures_of(&self, kind: ErrorKind) -> u32 {
        self.consecutive_failures_by_kind()
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// [`consecutive_failures_of`](Self::consecutive_failures_of) for every
    /// kind that has any.
    pub fn consecutive_failures_by_kind(&self) -> &[(ErrorKind, u32)] {
        self.streaks
            .get_or_init(current::consecutive_failures_by_kind)
    }

    /// Attempts of the service in flight in this process now, from their
    /// admission to their outcome; in `admit`, the one being admitted not
    /// counted.
    pub fn in_flight(&self) -> u32 {
        *self.in_flight.get_or_init(current::in_flight)
    }

    /// The successes counted here that were slower than this plugin's
    /// [`slow_call_threshold`](crate::strategy::Strategy::slow_call_threshold).
    pub fn slow_calls(&self) -> u32 {
        *self.slow_calls.get_or_init(current::slow_calls)
    }

    /// The permits this plugin granted to attempts that succeeded since
    /// its last report, oldest first (at most 16).
    pub fn permitted_successes(&self) -> &[u64] {
        self.permitted.get_or_init(current::permitted_successes)
    }

    /// The standard deviation of the latencies counted here, if there were
    /// at least two.
    pub fn latency_std_dev(&self) -> Option<f64> {
        let l = self.latency();
        if l.count < 2 {
            return None;
        }
        let n = f64::from(l.count);
        let mean = l.sum as f64 / n;
        let variance = (l.sum_of_squares as f64 / n - mean * mean).max(0.0);
        Some(variance.sqrt())
    }

    /// These outcomes with their in-flight count set (for tests).
    pub fn with_in_flight(mut self, n: u32) -> Outcomes {
        put(&mut self.in_flight, n);
        self
    }

    /// These outcomes with their slow calls set (for tests).
    pub fn with_slow_calls(mut self, n: u32) -> Outcomes {
        put(&mut self.slow_calls, n);
        self
    }

    /// These outcomes with their permitted successes set (for tests).
    pub fn with_permitted_successes(mut self, permits: Vec<u64>) -> Outcomes {
        put(&mut self.permitted, permits);
        self
    }

    /// These outcomes with their latency summary set (for tests).
    pub fn with_latency(mut self, latency: LatencySummary) -> Outcomes {
        put(&mut self.latency, latency);
        self
    }

    /// These outcomes with their failures in a row per kind set (for tests).
    pub fn with_consecutive_failures_by_kind(mut self, streaks: Vec<(ErrorKind, u32)>) -> Outcomes {
        put(&mut self.streaks, streaks);
        self
    }

    /// These outcomes with their failures per kind set (for tests).
    pub fn with_failures_by_kind(mut self, by_kind: Vec<(ErrorKind, u32)>) -> Outcomes {
        put(&mut self.by_kind, by_kind);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_sum_failures_by_kind() {
        let recent = Outcomes {
            failures: 4,
            ..Outcomes::default()
        }
        .with_failures_by_kind(vec![(ErrorKind::Timeout, 3), (ErrorKind::Auth, 1)]);
        assert_eq!(recent.failures_of(ErrorKind::Timeout), 3);
        assert_eq!(recent.failures_of(ErrorKind::Connect), 0);
        assert_eq!(
            recent.failures_among(&[ErrorKind::Timeout, ErrorKind::Auth]),
            4
        );
    }

    #[test]
    fn no_failures_needs_no_fetch() {
        // Off wasm a fetch would panic: a report without failures must
        // answer from its scalars alone.
        let recent = Outcomes::from_wit(wit::Outcomes {
            successes: 3,
            failures: 0,
            consecutive_failures: 0,
            success_latency_total: 30,
            leased_attempts: 0,
        });
        assert_eq!(recent.failures_of(ErrorKind::Timeout), 0);
        assert!(recent.failures_by_kind().is_empty());
        assert_eq!(recent.consecutive_failures_of(ErrorKind::Timeout), 0);
    }

    #[test]
    fn latency_and_streaks_as_given() {
        let recent = Outcomes::default()
            .with_latency(LatencySummary {
                count: 2,
                sum: 30,
                sum_of_squares: 500,
                span: 1_000,
            })
            .with_consecutive_failures_by_kind(vec![(ErrorKind::Timeout, 3)]);
        assert_eq!(recent.mean_latency(), Some(15.0));
        assert_eq!(recent.consecutive_failures_of(ErrorKind::Timeout), 3);
        assert_eq!(recent.consecutive_failures_of(ErrorKind::Auth), 0);
    }

    #[test]
    fn given_strings_are_not_fetched() {
        let event = ErrorEvent::new(ErrorKind::RateLimited, 2)
            .with_service("svc")
            .with_operation("GET /x")
            .with_message("slow down")
            .with_tags(vec![("quota".into(), "0".into())]);
        assert_eq!(event.service(), "svc");
        assert_eq!(event.operation(), "GET /x");
        assert_eq!(event.message(), "slow down");
        assert_eq!(event.tag("quota"), Some("0"));
        assert_eq!(event.tag("other"), None);
    }
}
