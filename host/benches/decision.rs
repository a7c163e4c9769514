//! The error path: what one failed attempt costs, from the floor (a raw
//! wasmtime call of a no-op strategy) through each bundled plugin to the
//! whole breaker → backoff → fallback pipeline, and the same logic in plain
//! Rust. `bench/run` turns the results into `bench/results.md`.

mod common;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::Component;

use common::{RawStrategy, call_info, engine, event, failing_call, guest, outcomes, wit, wit_v0_2};

#[path = "../../bench/logic/backoff.rs"]
#[allow(dead_code)]
mod backoff;
#[path = "../../bench/logic/breaker.rs"]
#[allow(dead_code)]
mod breaker;

/// The physical limit of a Wasm decision: a typed call of the no-op
/// fixture's export with the arguments every strategy gets, in a store and
/// engine set up as mender's (epoch interruption on). In this build
/// wasmtime has its `async` feature on (wasmtime-wasi's `p2` needs it); the
/// floor without it is in `bench/extism-compare`.
fn floor(c: &mut Criterion) {
    let engine = engine();
    let bytes = std::fs::read(guest("noop-strategy")).expect("the noop-strategy fixture");
    let component = Component::new(&engine, bytes).expect("compiling");
    let mut noop = RawStrategy::new(&engine, &component, "{}");
    let (event, recent, call) = (event(), outcomes(), call_info());
    let mut g = c.benchmark_group("floor");
    g.bench_function("on_error_noop", |b| {
        b.iter(|| black_box(noop.on_error(black_box(&event), black_box(&recent))))
    });
    g.bench_function("admit_noop", |b| {
        b.iter(|| black_box(noop.admit(black_box(&call), black_box(&recent))))
    });
    g.finish();
}

/// The floors of the two contracts, measured interleaved: batches of
/// 0.1 and 0.2 no-op `on-error` calls alternate, and each row adds up only
/// its own batches, so both see the same machine at the same time (#19's
/// goal: the 0.2 floor at most half the 0.1 floor; `bench/run` prints the
/// ratio). The 0.2 row includes what the host does for a 0.2 call besides
/// the call itself: converting the event to 0.2's scalars and copying its
/// strings into the instance's `current` buffers (`plugin/current.rs`).
fn contract_floor(c: &mut Criterion) {
    let engine = engine();
    let load = |name: &str| {
        let bytes = std::fs::read(guest(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let component = Component::new(&engine, bytes).expect("compiling");
        RawStrategy::new(&engine, &component, "{}")
    };
    let v0_1 = Mutex::new(load("noop-strategy"));
    let v0_2 = Mutex::new(load("noop-strategy-v0-2"));
    let (event, recent) = (event(), outcomes());
    let strings = Mutex::new(HostStrings::default());
    const BATCH: u64 = 64;
    // Runs `iters` calls of each contract, alternating batches; returns
    // (0.1 total, 0.2 total).
    let interleaved = |iters: u64| {
        let (mut v0_1, mut v0_2) = (v0_1.lock().unwrap(), v0_2.lock().unwrap());
        let mut strings = strings.lock().unwrap();
        let (mut t1, mut t2) = (Duration::ZERO, Duration::ZERO);
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH);
            let start = Instant::now();
            for _ in 0..n {
                black_box(v0_1.on_error(black_box(&event), black_box(&recent)));
            }
            t1 += start.elapsed();
            let start = Instant::now();
            for _ in 0..n {
                let (event, recent) = (black_box(&event), black_box(&recent));
                strings.set(event, recent);
                black_box(v0_2.on_error_v0_2(event_v0_2(event), outcomes_v0_2(recent)));
            }
            t2 += start.elapsed();
            left -= n;
        }
        (t1, t2)
    };
    let mut g = c.benchmark_group("contract_floor");
    g.bench_function("on_error_v0_1", |b| b.iter_custom(|n| interleaved(n).0));
    g.bench_function("on_error_v0_2", |b| b.iter_custom(|n| interleaved(n).1));
    g.finish();
}

/// The host's per-call copy of a 0.2 event's strings (`Current` in
/// `host/src/plugin/current.rs`, private to the crate): buffers reused
/// from call to call.
#[derive(Default)]
struct HostStrings {
    operation: String,
    message: String,
    tags: Vec<(String, String)>,
    failures_by_kind: Vec<(wit::ErrorKind, u32)>,
}

impl HostStrings {
    fn set(&mut self, event: &wit::ErrorEvent, recent: &wit::Outcomes) {
        self.operation.clone_from(&event.operation);
        self.message.clone_from(&event.message);
        self.tags.clone_from(&event.tags);
        self.failures_by_kind.clone_from(&recent.failures_by_kind);
    }
}

/// `v0_2::event` of the host: the event's scalars.
fn event_v0_2(e: &wit::ErrorEvent) -> wit_v0_2::ErrorEvent {
    wit_v0_2::ErrorEvent {
        kind: kind_v0_2(e.kind),
        status: e.status,
        retry_after: e.retry_after,
        attempt: e.attempt,
        elapsed: e.elapsed,
        deadline_left: e.deadline_left,
        idempotent: e.idempotent,
    }
}

/// `v0_2::kind` of the host.
fn kind_v0_2(k: wit::ErrorKind) -> wit_v0_2::ErrorKind {
    use wit::ErrorKind as K1;
    use wit_v0_2::ErrorKind as K2;
    match k {
        K1::Connect => K2::Connect,
        K1::Timeout => K2::Timeout,
        K1::RateLimited => K2::RateLimited,
        K1::Auth => K2::Auth,
        K1::Tool => K2::Tool,
        K1::Protocol => K2::Protocol,
        K1::Resource => K2::Resource,
        K1::Cancelled => K2::Cancelled,
        K1::Rejected => K2::Rejected,
        K1::Unknown => K2::Unknown,
    }
}

/// `v0_2::outcomes` of the host: the counts' scalars.
fn outcomes_v0_2(o: &wit::Outcomes) -> wit_v0_2::Outcomes {
    wit_v0_2::Outcomes {
        successes: o.successes,
        failures: o.failures,
        consecutive_failures: o.consecutive_failures,
        success_latency_total: o.success_latency_total,
        leased_attempts: o.leased_attempts,
    }
}

/// One failed call through `Runtime::call`, per service of
/// [`common::PIPELINE3`]: the whole pipeline, each plugin alone, and none.
fn error_path(c: &mut Criterion) {
    let tokio = common::current_thread();
    let rt = tokio.block_on(async { common::runtime(common::PIPELINE3) });
    // The pipeline answers as designed, or the bench measures the wrong path.
    assert!(
        tokio.block_on(failing_call(&rt, "pipeline3")),
        "the fallback answers"
    );
    assert!(
        !tokio.block_on(failing_call(&rt, "backoff")),
        "the retry is refused"
    );
    let mut g = c.benchmark_group("error_path");
    for service in ["pipeline3", "breaker", "backoff", "fallback", "bare"] {
        g.bench_function(service, |b| {
            b.iter_custom(|iters| common::time_calls(&tokio, iters, || failing_call(&rt, service)))
        });
    }
    g.finish();
}

/// The same decisions in plain Rust: the backoff policy
/// (`bench/logic/backoff.rs`), a consecutive-failure breaker
/// (`bench/logic/breaker.rs`), and the two plus a static fallback, with a
/// failure record and a guardrail check, as the host's pipeline does them.
fn native(c: &mut Criterion) {
    let policy = backoff::DEFAULTS;
    let mut seed = 1u64;
    let message = "connection refused";
    let mut g = c.benchmark_group("native");
    g.bench_function("backoff_decide", |b| {
        b.iter(|| {
            let event = backoff::Event {
                kind: backoff::Kind::Connect,
                message,
                attempt: black_box(1),
                retry_after: None,
                deadline_left: Some(120_000),
            };
            black_box(policy.decide(&event, backoff::splitmix64(&mut seed)))
        })
    });
    let cb = Mutex::new(breaker::Breaker::new(u32::MAX, 30_000, 1));
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    g.bench_function("breaker_admit", |b| {
        b.iter(|| {
            let mut cb = cb.lock().unwrap();
            cb.on_failure(now());
            black_box(cb.admit(now()))
        })
    });
    let fallback = String::from("cached answer");
    let max_attempts = 1;
    g.bench_function("pipeline3", |b| {
        b.iter(|| {
            let admitted = cb.lock().unwrap().admit(now());
            assert!(admitted);
            cb.lock().unwrap().on_failure(now());
            let event = backoff::Event {
                kind: backoff::Kind::Connect,
                message,
                attempt: black_box(1),
                retry_after: None,
                deadline_left: Some(120_000),
            };
            let answer = match policy.decide(&event, backoff::splitmix64(&mut seed)) {
                backoff::Decision::Retry(delay) if event.attempt < max_attempts => {
                    Err(Duration::from_millis(delay))
                }
                _ => Ok(fallback.clone()),
            };
            black_box(answer)
        })
    });
    g.finish();
}

/// Pieces of the host's own paths, for the notes on where their time goes:
/// redacting an ordinary error message (nothing to redact), and one read
/// of the monotonic clock (a call reads it several times).
fn host(c: &mut Criterion) {
    let redactor = mender::Redactor::default();
    let mut g = c.benchmark_group("host");
    g.bench_function("redact_message", |b| {
        b.iter(|| black_box(redactor.redact(black_box("connection refused"))))
    });
    g.bench_function("clock_read", |b| b.iter(|| black_box(Instant::now())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = floor, contract_floor, error_path, native, host
}
criterion_main!(benches);
