//! Contract `mender:plugin@0.2.0` (`wit/since_v0.2.0/`; unreleased until
//! issue #19 closes): the bindings, and the conversions between its types
//! and the host's vocabulary ([`wit`], the 0.1 records).
//!
//! 0.2's hooks take scalars only; the strings and lists 0.1 passed inline
//! are served by the `current` interface (`plugin/current.rs`). Its other
//! host interfaces are 0.1's, unchanged: the implementations below forward
//! to the 0.1 ones, so each behaviour (limits, scoping) is written once.

use super::v0_1::strategy::mender::plugin as v1;
use super::{Routed, wit};
use crate::plugin::current::{AdmitAnswer, StrategyInfo};
use crate::plugin::host_api::HostState;

/// The `strategy-plugin` world, and with it every shared interface.
pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "strategy-plugin",
        imports: {
            "mender:plugin/log": trappable,
            "mender:plugin/state": trappable,
            "mender:plugin/metrics": trappable,
        },
    });
}

/// The `fallback-plugin` world.
pub mod fallback {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "fallback-plugin",
        with: {
            "mender:plugin/types": super::strategy::mender::plugin::types,
            "mender:plugin/log": super::strategy::mender::plugin::log,
            "mender:plugin/clock": super::strategy::mender::plugin::clock,
            "mender:plugin/random": super::strategy::mender::plugin::random,
            "mender:plugin/state": super::strategy::mender::plugin::state,
            "mender:plugin/metrics": super::strategy::mender::plugin::metrics,
            "mender:plugin/current": super::strategy::mender::plugin::current,
        },
    });
}

use strategy::mender::plugin::{clock, log, metrics, random, state, types};

use crate::host::state::{BatchOp, BatchResult};

/// The event's scalars: what 0.2 passes inline.
pub(crate) fn event(e: &wit::ErrorEvent) -> types::ErrorEvent {
    types::ErrorEvent {
        kind: kind(e.kind),
        status: e.status,
        retry_after: e.retry_after,
        attempt: e.attempt,
        elapsed: e.elapsed,
        deadline_left: e.deadline_left,
        idempotent: e.idempotent,
    }
}

/// The call's scalars.
pub(crate) fn call_info(c: &wit::CallInfo) -> types::CallInfo {
    types::CallInfo {
        attempt: c.attempt,
        elapsed: c.elapsed,
        deadline_left: c.deadline_left,
        idempotent: c.idempotent,
    }
}

/// The counts' scalars (the per-kind list is `current.failures-by-kind`).
pub(crate) fn outcomes(o: &wit::Outcomes) -> types::Outcomes {
    types::Outcomes {
        successes: o.successes,
        failures: o.failures,
        consecutive_failures: o.consecutive_failures,
        success_latency_total: o.success_latency_total,
        leased_attempts: o.leased_attempts,
    }
}

pub(crate) fn recorded(r: &wit::RecordedResult) -> types::RecordedResult {
    types::RecordedResult {
        body: r.body.clone(),
        age: r.age,
    }
}

pub(crate) fn kind(k: wit::ErrorKind) -> types::ErrorKind {
    use types::ErrorKind as K;
    match k {
        wit::ErrorKind::Connect => K::Connect,
        wit::ErrorKind::Timeout => K::Timeout,
        wit::ErrorKind::RateLimited => K::RateLimited,
        wit::ErrorKind::Auth => K::Auth,
        wit::ErrorKind::Tool => K::Tool,
        wit::ErrorKind::Protocol => K::Protocol,
        wit::ErrorKind::Resource => K::Resource,
        wit::ErrorKind::Cancelled => K::Cancelled,
        wit::ErrorKind::Rejected => K::Rejected,
        wit::ErrorKind::Unknown => K::Unknown,
    }
}

pub(crate) fn hooks(h: types::Hooks) -> wit::Hooks {
    let mut out = wit::Hooks::empty();
    if h.contains(types::Hooks::ADMIT) {
        out |= wit::Hooks::ADMIT;
    }
    if h.contains(types::Hooks::ON_ERROR) {
        out |= wit::Hooks::ON_ERROR;
    }
    out
}

pub(crate) fn strategy_info(i: types::StrategyInfo) -> StrategyInfo {
    StrategyInfo {
        hooks: hooks(i.hooks),
        slow_call_threshold: i.slow_call_threshold,
    }
}

pub(crate) fn handler_info(i: types::HandlerInfo) -> wit::HandlerInfo {
    wit::HandlerInfo {
        records_results: i.records_results,
    }
}

pub(crate) fn answer(a: types::FallbackAnswer) -> wit::FallbackAnswer {
    wit::FallbackAnswer {
        body: a.body,
        age: a.age,
    }
}

fn lease(l: types::Lease) -> wit::Lease {
    wit::Lease {
        ttl: l.ttl,
        max_attempts: l.max_attempts,
        until_failure: l.until_failure,
    }
}

/// A decision in the host's vocabulary; a `retry-on` is a `retry` with
/// its route's upstream beside it.
pub(crate) fn decision(d: types::Decision) -> Routed<wit::Decision> {
    match d {
        types::Decision::Pass => wit::Decision::Pass.into(),
        types::Decision::Retry(ms) => wit::Decision::Retry(ms).into(),
        types::Decision::Fallback(a) => wit::Decision::Fallback(answer(a)).into(),
        types::Decision::Fail(reason) => wit::Decision::Fail(reason).into(),
        types::Decision::RefreshCredentials => wit::Decision::RefreshCredentials.into(),
        types::Decision::RetryOn(route) => Routed {
            answer: wit::Decision::Retry(route.delay),
            upstream: Some(route.upstream),
        },
    }
}

/// An admission in the host's vocabulary, with the permit its grant
/// names and the grant's upstream beside it (0.1 has neither).
pub(crate) fn admission(a: types::Admission) -> Routed<AdmitAnswer> {
    let (permit, upstream) = match &a {
        types::Admission::Allow(g) => (g.permit, g.upstream),
        _ => (None, None),
    };
    let admission = match a {
        types::Admission::Allow(g) => wit::Admission::Allow(wit::Grant {
            attempt_timeout: g.attempt_timeout,
            lease: g.lease.map(lease),
            hedge: g.hedge.map(|h| wit::Hedge {
                after: h.after,
                max: h.max,
            }),
        }),
        types::Admission::Reject(r) => wit::Admission::Reject(wit::Rejection {
            reason: r.reason,
            retry_after: r.retry_after,
        }),
        types::Admission::Wait(ms) => wit::Admission::Wait(ms),
    };
    Routed {
        answer: AdmitAnswer { admission, permit },
        upstream,
    }
}

// The host interfaces 0.2 shares with 0.1, forwarded.

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        v1::log::Host::write(self, log_level(level), message)
    }
    fn enabled(&mut self, level: log::Level) -> wasmtime::Result<bool> {
        Ok(crate::plugin::host_api::log_enabled(log_level(level)))
    }
}

fn log_level(level: log::Level) -> v1::log::Level {
    match level {
        log::Level::Trace => v1::log::Level::Trace,
        log::Level::Debug => v1::log::Level::Debug,
        log::Level::Info => v1::log::Level::Info,
        log::Level::Warn => v1::log::Level::Warn,
        log::Level::Error => v1::log::Level::Error,
    }
}

impl clock::Host for HostState {
    fn now(&mut self) -> u64 {
        v1::clock::Host::now(self)
    }
}

impl random::Host for HostState {
    fn next_u64(&mut self) -> u64 {
        v1::random::Host::next_u64(self)
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        v1::state::Host::get(self, key)
    }
    fn set(&mut self, key: String, value: String, ttl: Option<u64>) -> wasmtime::Result<()> {
        v1::state::Host::set(self, key, value, ttl)
    }
    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        v1::state::Host::delete(self, key)
    }
    fn increment(&mut self, key: String, delta: i64, ttl: Option<u64>) -> wasmtime::Result<i64> {
        v1::state::Host::increment(self, key, delta, ttl)
    }
    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        value: String,
        ttl: Option<u64>,
    ) -> wasmtime::Result<bool> {
        v1::state::Host::compare_and_swap(self, key, expected, value, ttl)
    }
    fn batch(&mut self, ops: Vec<state::Op>) -> wasmtime::Result<Vec<state::OpResult>> {
        let ops = ops.into_iter().map(batch_op).collect();
        let results = self.state_batch(ops)?;
        Ok(results.into_iter().map(op_result).collect())
    }
}

fn batch_op(op: state::Op) -> BatchOp {
    match op {
        state::Op::Get(key) => BatchOp::Get { key },
        state::Op::Set(o) => BatchOp::Set {
            key: o.key,
            value: o.value,
            ttl_ms: o.ttl,
        },
        state::Op::Delete(key) => BatchOp::Delete { key },
        state::Op::Increment(o) => BatchOp::Increment {
            key: o.key,
            delta: o.delta,
            ttl_ms: o.ttl,
        },
        state::Op::CompareAndSwap(o) => BatchOp::CompareAndSwap {
            key: o.key,
            expected: o.expected,
            value: o.value,
            ttl_ms: o.ttl,
        },
        state::Op::Expect(o) => BatchOp::Expect {
            key: o.key,
            value: o.value,
        },
    }
}

fn op_result(result: BatchResult) -> state::OpResult {
    match result {
        BatchResult::Value(v) => state::OpResult::Value(v),
        BatchResult::Number(n) => state::OpResult::Number(n),
        BatchResult::Done => state::OpResult::Done,
        BatchResult::Skipped => state::OpResult::Skipped,
    }
}

impl metrics::Host for HostState {
    fn counter_add(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        v1::metrics::Host::counter_add(self, name, value)
    }
    fn gauge_set(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        v1::metrics::Host::gauge_set(self, name, value)
    }
}
