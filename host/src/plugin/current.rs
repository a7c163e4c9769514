//! What the hook call in progress is about, for contract 0.2's `current`
//! interface: the strings and lists 0.1 passed inline, served only when
//! the plugin asks.
//!
//! The host copies them into buffers the instance keeps between calls
//! (`clone_from` reuses their capacity), so a steady stream of calls
//! allocates nothing here; what crosses into the guest is only what it
//! reads. 0.1 instances never touch this.

use super::bindings::v0_2::strategy::mender::plugin::{current, types};
use super::bindings::{Upstreams, v0_2, wit};
use super::host_api::HostState;
use crate::failure::ErrorKind;

/// The successes' latencies since the last report, and the time it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LatencySummary {
    pub(crate) count: u32,
    pub(crate) sum: u64,
    pub(crate) sum_of_squares: u64,
    /// Host milliseconds from the previous report (the first report: from
    /// the host clock's start) to this one.
    pub(crate) span: u64,
}

/// What 0.2 tells one hook call beyond 0.1's arguments: one report of the
/// detail it adds to `outcomes` (counted by `pipeline/detail.rs`), and the
/// call's upstreams for routing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecentDetail {
    pub(crate) latency: LatencySummary,
    /// Failures in a row per kind right now (not a delta); kinds with none
    /// are left out.
    pub(crate) consecutive_by_kind: Vec<(ErrorKind, u32)>,
    /// The call's upstreams and the one the attempt uses (set by the call
    /// path, not counted).
    pub(crate) upstreams: Upstreams,
    /// Attempts of the service in flight now, the one being admitted not
    /// counted (`pipeline/in_flight.rs`).
    pub(crate) in_flight: u32,
    /// Successes slower than the plugin's threshold, over the latency's span.
    pub(crate) slow_calls: u32,
    /// `on-error`: the permit the plugin gave the failed attempt.
    pub(crate) permit: Option<u64>,
    /// The plugin's permits whose attempts succeeded since its last report.
    pub(crate) permitted_successes: Vec<u64>,
}

/// What a strategy tells the host at `init`, in either contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StrategyInfo {
    pub(crate) hooks: wit::Hooks,
    /// 0.2: successes slower than this (ms) are counted as slow calls.
    pub(crate) slow_call_threshold: Option<u64>,
}

impl From<wit::StrategyInfo> for StrategyInfo {
    fn from(i: wit::StrategyInfo) -> StrategyInfo {
        StrategyInfo {
            hooks: i.hooks,
            slow_call_threshold: None,
        }
    }
}

/// A strategy's answer to `admit`, with the permit (0.2) its grant gave.
#[derive(Clone, Debug)]
pub(crate) struct AdmitAnswer {
    pub(crate) admission: wit::Admission,
    /// `Some` only with an `allow` whose grant named a permit.
    pub(crate) permit: Option<u64>,
}

impl From<wit::Admission> for AdmitAnswer {
    fn from(admission: wit::Admission) -> AdmitAnswer {
        AdmitAnswer {
            admission,
            permit: None,
        }
    }
}

/// The strings and lists of the hook call in progress.
#[derive(Default)]
pub(crate) struct Current {
    operation: String,
    message: String,
    tags: Vec<(String, String)>,
    failures_by_kind: Vec<(wit::ErrorKind, u32)>,
    latency: LatencySummary,
    consecutive_by_kind: Vec<(ErrorKind, u32)>,
    upstreams: Upstreams,
    in_flight: u32,
    slow_calls: u32,
    permit: Option<u64>,
    permitted_successes: Vec<u64>,
}

impl Current {
    /// Before `on-error` or `serve`: the event's strings, and the per-kind
    /// counts and detail of `recent` (`None` for `serve`, which has none).
    pub(crate) fn set_event(
        &mut self,
        event: &wit::ErrorEvent,
        recent: Option<(&wit::Outcomes, &RecentDetail)>,
    ) {
        self.operation.clone_from(&event.operation);
        self.message.clone_from(&event.message);
        self.tags.clone_from(&event.tags);
        self.set_counts(recent);
    }

    /// Before `admit`: the call's strings (it has no message).
    pub(crate) fn set_call(
        &mut self,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) {
        self.operation.clone_from(&call.operation);
        self.message.clear();
        self.tags.clone_from(&call.tags);
        self.set_counts(Some((recent, detail)));
    }

    fn set_counts(&mut self, recent: Option<(&wit::Outcomes, &RecentDetail)>) {
        match recent {
            Some((r, d)) => {
                self.failures_by_kind.clone_from(&r.failures_by_kind);
                self.latency = d.latency;
                self.consecutive_by_kind.clone_from(&d.consecutive_by_kind);
                self.upstreams.clone_from(&d.upstreams);
                self.in_flight = d.in_flight;
                self.slow_calls = d.slow_calls;
                self.permit = d.permit;
                self.permitted_successes.clone_from(&d.permitted_successes);
            }
            None => {
                self.failures_by_kind.clear();
                self.latency = LatencySummary::default();
                self.consecutive_by_kind.clear();
                self.upstreams = Upstreams::default();
                self.in_flight = 0;
                self.slow_calls = 0;
                self.permit = None;
                self.permitted_successes.clear();
            }
        }
    }
}

impl current::Host for HostState {
    fn service(&mut self) -> String {
        self.service.to_string()
    }

    fn operation(&mut self) -> String {
        self.current.operation.clone()
    }

    fn message(&mut self) -> String {
        self.current.message.clone()
    }

    fn tag(&mut self, key: String) -> Option<String> {
        self.current
            .tags
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    fn tags(&mut self) -> Vec<(String, String)> {
        self.current.tags.clone()
    }

    fn failures_by_kind(&mut self) -> Vec<(types::ErrorKind, u32)> {
        self.current
            .failures_by_kind
            .iter()
            .map(|(k, n)| (v0_2::kind(*k), *n))
            .collect()
    }

    fn latency(&mut self) -> types::LatencySummary {
        let l = self.current.latency;
        types::LatencySummary {
            count: l.count,
            sum: l.sum,
            sum_of_squares: l.sum_of_squares,
            span: l.span,
        }
    }

    fn consecutive_failures_by_kind(&mut self) -> Vec<(types::ErrorKind, u32)> {
        self.current
            .consecutive_by_kind
            .iter()
            .map(|(k, n)| (v0_2::kind((*k).into()), *n))
            .collect()
    }

    fn upstreams(&mut self) -> Vec<String> {
        self.current
            .upstreams
            .names
            .as_deref()
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    fn upstream(&mut self) -> Option<u32> {
        self.current.upstreams.used
    }

    fn in_flight(&mut self) -> u32 {
        self.current.in_flight
    }

    fn slow_calls(&mut self) -> u32 {
        self.current.slow_calls
    }

    fn permit(&mut self) -> Option<u64> {
        self.current.permit
    }

    fn permitted_successes(&mut self) -> Vec<u64> {
        self.current.permitted_successes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(operation: &str, tags: &[(&str, &str)]) -> wit::ErrorEvent {
        wit::ErrorEvent {
            service: "svc".into(),
            operation: operation.into(),
            kind: wit::ErrorKind::Timeout,
            message: format!("{operation} timed out"),
            status: None,
            retry_after: None,
            attempt: 1,
            elapsed: 0,
            deadline_left: None,
            idempotent: true,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn each_call_replaces_the_last_ones_strings() {
        let mut c = Current::default();
        let recent = wit::Outcomes {
            successes: 0,
            failures: 2,
            failures_by_kind: vec![(wit::ErrorKind::Timeout, 2)],
            consecutive_failures: 2,
            success_latency_total: 0,
            leased_attempts: 0,
        };
        let detail = RecentDetail {
            latency: LatencySummary {
                count: 1,
                sum: 7,
                sum_of_squares: 49,
                span: 100,
            },
            consecutive_by_kind: vec![(ErrorKind::Timeout, 2)],
            upstreams: Upstreams {
                names: Some(vec!["a".to_owned(), "b".to_owned()].into()),
                used: Some(1),
            },
            in_flight: 3,
            slow_calls: 1,
            permit: Some(9),
            permitted_successes: vec![4],
        };
        c.set_event(
            &event("GET /a", &[("k", "v"), ("x", "y")]),
            Some((&recent, &detail)),
        );
        assert_eq!(c.operation, "GET /a");
        assert_eq!(c.message, "GET /a timed out");
        assert_eq!(c.tags.len(), 2);
        assert_eq!(c.failures_by_kind, vec![(wit::ErrorKind::Timeout, 2)]);
        assert_eq!(c.latency, detail.latency);
        assert_eq!(c.consecutive_by_kind, detail.consecutive_by_kind);
        assert_eq!(c.upstreams, detail.upstreams);
        assert_eq!((c.in_flight, c.slow_calls, c.permit), (3, 1, Some(9)));
        assert_eq!(c.permitted_successes, vec![4]);
        // A `serve` has no counts, an `admit` no message: nothing of the
        // previous call may show through.
        c.set_event(&event("GET /b", &[]), None);
        assert_eq!(c.operation, "GET /b");
        assert!(c.tags.is_empty() && c.failures_by_kind.is_empty());
        assert_eq!(c.latency, LatencySummary::default());
        assert!(c.consecutive_by_kind.is_empty());
        assert_eq!(
            c.upstreams,
            Upstreams::default(),
            "serve is about no attempt"
        );
        assert_eq!((c.in_flight, c.slow_calls, c.permit), (0, 0, None));
        assert!(c.permitted_successes.is_empty());
        let call = wit::CallInfo {
            service: "svc".into(),
            operation: "GET /c".into(),
            attempt: 1,
            elapsed: 0,
            deadline_left: None,
            idempotent: true,
            tags: vec![("t".into(), "1".into())],
        };
        let none = wit::Outcomes {
            failures_by_kind: Vec::new(),
            ..recent
        };
        c.set_call(&call, &none, &RecentDetail::default());
        assert_eq!((c.operation.as_str(), c.message.as_str()), ("GET /c", ""));
        assert_eq!(c.tags, vec![("t".to_owned(), "1".to_owned())]);
        assert!(c.failures_by_kind.is_empty());
    }
}
