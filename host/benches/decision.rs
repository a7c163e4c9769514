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

use common::{RawStrategy, call_info, engine, event, failing_call, guest, outcomes};

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
    targets = floor, error_path, native, host
}
criterion_main!(benches);
