//! The success path (a wrapped call that succeeds, against the bare call)
//! and throughput across the machine's cores with many concurrent tasks.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mender::Failure;
use metrics_exporter_prometheus::PrometheusBuilder;

use common::{failing_call, succeeding_call};

/// Services for the success path. The breaker (an `admit` hook with an
/// until-failure lease) costs no Wasm call while its lease holds; the
/// rate limiter grants no lease by default, so it is asked before every
/// attempt (with `lease = 1000`, once per 1000 attempts);
/// backoff and fallbacks are not asked when calls succeed.
const HAPPY: &str = r#"
[plugins.breaker]
bundled = "circuit-breaker"

[plugins.backoff]
bundled = "exponential-backoff"

[plugins.fallback]
bundled = "static-fallback"
config = { default = "cached answer" }

[plugins.cached]
bundled = "cached-fallback"

# A limit far above the bench's call rate: it never waits or rejects.
[plugins.limiter]
bundled = "rate-limiter"
config = { rate = 1000000000, per = "1s" }

# The same limit, leasing 1000 slots per plugin call: the host admits the
# next 999 attempts itself.
[plugins.limiter-leased]
bundled = "rate-limiter"
config = { rate = 1000000000, per = "1s", lease = 1000 }

# No plugins: the guardrails only (an attempt timeout, a deadline).
[services.bare]

# The breaker alone, as the issue's target asks.
[services.breaker]
strategies = ["breaker"]

# The breaker and the rate limiter, as the issue's target names them.
[services.breaker-limiter]
strategies = ["breaker", "limiter"]

# The breaker and a leasing rate limiter: no Wasm call for 999 of every
# 1000 attempts.
[services.breaker-limiter-leased]
strategies = ["breaker", "limiter-leased"]

# The breaker without the default attempt timeout (no timer per attempt).
[services.breaker-no-timeout]
strategies = ["breaker"]
guardrails = { attempt-timeout = "off", deadline = "off" }

# The breaker behind a bulkhead (`max-in-flight`): one slot taken and
# given back per attempt; the bench runs one call at a time, so it never
# waits.
[services.breaker-bulkhead]
strategies = ["breaker"]
guardrails = { max-in-flight = 64 }

# The adaptive bulkhead plugin (contract 0.2, no lease: a Wasm call per
# attempt, and the host counts in-flight attempts and slow calls for it),
# with limits far above the bench's one call at a time: it never rejects.
[plugins.bulkhead]
bundled = "bulkhead"
config = { initial-limit = 1000, max-limit = 1000, latency-target = "1m" }

[services.bulkhead-plugin]
strategies = ["bulkhead"]

# A hedge granted (leased for an hour) that never fires: the call
# answers at once. Beside `breaker`: what a granted hedge costs.
[plugins.hedge]
bundled = "hedge"
config = { after = "1s", refresh = "1h" }

[services.breaker-hedge]
strategies = ["breaker", "hedge"]

# The bundled pipeline.
[services.pipeline3]
strategies = ["breaker", "backoff"]
fallbacks = ["fallback"]

# With the cached fallback, which records every idempotent success.
[services.cached]
strategies = ["breaker", "backoff"]
fallbacks = ["cached"]
"#;

fn happy_path(c: &mut Criterion) {
    let tokio = common::current_thread();
    let rt = tokio.block_on(async { common::runtime(HAPPY) });
    let mut g = c.benchmark_group("happy");
    g.bench_function("bare_call", |b| {
        let upstream = || async { Ok::<String, Failure>(String::new()) };
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(upstream().await.is_ok());
                }
                start.elapsed()
            })
        })
    });
    for service in [
        "bare",
        "breaker",
        "breaker-no-timeout",
        "breaker-limiter",
        "breaker-limiter-leased",
        "breaker-bulkhead",
        "breaker-hedge",
        "pipeline3",
        "cached",
        "bulkhead-plugin",
    ] {
        assert!(tokio.block_on(succeeding_call(&rt, service)));
        g.bench_function(service, |b| {
            b.iter_custom(|iters| {
                common::time_calls(&tokio, iters, || succeeding_call(&rt, service))
            })
        });
    }
    // The same calls with the `mender` command's Prometheus recorder
    // installed (local to this thread, which runs the whole call): what
    // the metrics cost beside the runs above, which emit into the facade's
    // no-op. A pipeline registers its metric handles with the recorder in
    // force at its first call, so these calls go through a runtime of
    // their own, first called under the recorder. The activity window and
    // the spans (disabled without a subscriber) are in both.
    let recorder = PrometheusBuilder::new().build_recorder();
    let recorded = metrics::with_local_recorder(&recorder, || {
        tokio.block_on(async { common::runtime(HAPPY) })
    });
    for service in ["bare", "breaker", "pipeline3"] {
        metrics::with_local_recorder(&recorder, || {
            assert!(tokio.block_on(succeeding_call(&recorded, service)));
        });
        g.bench_function(format!("{service}_recorded"), |b| {
            b.iter_custom(|iters| {
                metrics::with_local_recorder(&recorder, || {
                    common::time_calls(&tokio, iters, || succeeding_call(&recorded, service))
                })
            })
        });
    }
    // The handles really are the recorder's: the calls above were counted.
    let scraped = recorder.handle().render();
    assert!(
        scraped.contains("mender_calls_total{service=\"breaker\",outcome=\"ok\"}"),
        "the recorded runs emitted nothing: {scraped}"
    );
    g.finish();
}

/// Concurrent tasks sharing one runtime on a multi-threaded tokio runtime
/// with a worker per core: the time per call of the whole batch, so
/// 1e9 / it is calls per second. Each plugin keeps `pool-size` warm
/// instances (default: one per core); a hook call takes one, and more
/// concurrent hook calls than that create extra instances.
const TASKS: u64 = 64;

fn throughput(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rt = tokio.block_on(async { common::runtime(common::PIPELINE3) });
    let happy = tokio.block_on(async { common::runtime(HAPPY) });
    let mut g = c.benchmark_group("throughput");
    // Each sample is thousands of calls: keep the sample count modest.
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let cases: [(&str, &mender::Runtime, bool); 2] = [
        ("error_pipeline3", &rt, true),
        ("happy_breaker", &happy, false),
    ];
    for (name, runtime, fail) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS);
                let runtime = Arc::new(runtime.clone());
                tokio.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let runtime = runtime.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let ok = if fail {
                                        failing_call(&runtime, "pipeline3").await
                                    } else {
                                        succeeding_call(&runtime, "breaker").await
                                    };
                                    black_box(ok);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    // Per call, as if exactly `iters` calls had run.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_task * TASKS) as f64)
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = happy_path, throughput
}
criterion_main!(benches);
