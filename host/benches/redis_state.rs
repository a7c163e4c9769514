//! What fleet-wide state costs and saves.
//!
//! * `decision/{memory,redis}/{breaker,limiter}`: one call whose admission
//!   asks a plugin that reads and writes state (the circuit breaker with
//!   `lease = 0`, the GCRA rate limiter), on each backend;
//!   `decision/*/retry-budget`: one call that fails once and is retried,
//!   which asks the retry budget (and the backoff plugin, which keeps no
//!   state). Before the timings, the state operations (= Redis round
//!   trips) per call are counted and printed.
//! * `outage`: N runtimes (standing in for N agent processes) call an
//!   upstream that is down for a while; printed are the upstream calls made
//!   during the outage with one shared breaker versus a breaker per process.
//!
//! Needs `redis-server` on the PATH (the bench starts its own); without it
//! only the memory figures are measured. Figures: bench/redis-results.md.

#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
#[path = "../../tests/common/tools.rs"]
mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mender::state::{
    BatchOp, BatchResult, QuotaExceeded, RedisSettings, RedisState, RetryAsk, RetryTake, ScopedKey,
    StateQuota, StateScope, StateStore,
};
use mender::{CallSpec, ErrorKind, Failure, Runtime};
use redis_server::RedisServer;

/// Counts the operations that reach the store (one Redis round trip each).
struct Counted {
    inner: Arc<dyn StateStore>,
    ops: AtomicU64,
}

impl Counted {
    fn tick(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }
}

impl StateStore for Counted {
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String> {
        self.tick();
        self.inner.get(key, now_ms)
    }
    fn set_within(
        &self,
        key: ScopedKey,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded> {
        self.tick();
        self.inner.set_within(key, value, ttl_ms, now_ms, quota)
    }
    fn delete(&self, key: &ScopedKey) {
        self.tick();
        self.inner.delete(key)
    }
    fn increment_within(
        &self,
        key: ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded> {
        self.tick();
        self.inner
            .increment_within(key, delta, ttl_ms, now_ms, quota)
    }
    fn compare_and_swap_within(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<bool, QuotaExceeded> {
        self.tick();
        self.inner
            .compare_and_swap_within(key, expected, value, ttl_ms, now_ms, quota)
    }
    fn batch_within(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded> {
        self.tick();
        self.inner.batch_within(scope, ops, now_ms, quota)
    }
    fn take_retry(&self, ask: RetryAsk, now_ms: u64) -> RetryTake {
        self.tick();
        self.inner.take_retry(ask, now_ms)
    }
    fn status(&self) -> Vec<mender::StateStatus> {
        self.inner.status()
    }
}

const BREAKER: &str = r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 5, open-for = "1s", lease = 0 }
[services.default]
strategies = ["breaker"]
"#;

const LIMITER: &str = r#"
[guardrails]
max-attempts = 1
[plugins.limiter]
bundled = "rate-limiter"
config = { rate = 1000000000, per = "1s" }
[services.default]
strategies = ["limiter"]
"#;

/// Every call fails once and is retried at once: one retry-budget
/// decision per call (the budget never runs out).
const RETRY_BUDGET: &str = r#"
[guardrails]
max-attempts = 2
retry-budget = { percent = 100, min-retries = 1000000000, window = "1h" }
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = 0, jitter = "none" }
[services.default]
strategies = ["backoff"]
"#;

fn runtime(config: &str, store: Arc<dyn StateStore>) -> Runtime {
    Runtime::builder()
        .config_str(config, "bench.toml")
        .unwrap()
        .state_store(store)
        .seed(1)
        .build()
        .unwrap()
}

fn redis_store(server: &RedisServer, prefix: &str) -> Arc<dyn StateStore> {
    Arc::new(
        RedisState::connect(RedisSettings {
            url: server.url(),
            prefix: prefix.into(),
            timeout: Duration::from_millis(50),
            ca_file: None,
        })
        .unwrap(),
    )
}

/// One call; with `fail_first`, its first attempt fails (connect).
async fn one_call(rt: &Runtime, fail_first: bool) {
    rt.call(
        CallSpec::new("search", "q").idempotent(true),
        |a| async move {
            if fail_first && a.number == 1 {
                return Err(Failure::new(ErrorKind::Connect, "refused"));
            }
            Ok::<_, Failure>("ok".to_owned())
        },
    )
    .await
    .unwrap();
}

fn decisions(c: &mut Criterion) {
    let server = RedisServer::start_or_skip("bench redis_state");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("decision");
    for (plugin, config, fail_first) in [
        ("breaker", BREAKER, false),
        ("limiter", LIMITER, false),
        ("retry-budget", RETRY_BUDGET, true),
    ] {
        let mut backends: Vec<(&str, Arc<dyn StateStore>)> =
            vec![("memory", Arc::new(mender::state::MemoryState::default()))];
        if let Some(s) = &server {
            backends.push(("redis", redis_store(s, plugin)));
        }
        for (backend, store) in backends {
            let counted = Arc::new(Counted {
                inner: store,
                ops: AtomicU64::new(0),
            });
            let rt = runtime(config, counted.clone());
            const N: u64 = 1000;
            tokio.block_on(async {
                for _ in 0..N {
                    one_call(&rt, fail_first).await;
                }
            });
            println!(
                "round trips per decision: {plugin} on {backend}: {:.2}",
                counted.ops.load(Ordering::Relaxed) as f64 / N as f64
            );
            group.bench_function(format!("{backend}/{plugin}"), |b| {
                b.iter(|| tokio.block_on(one_call(&rt, fail_first)))
            });
        }
    }
    group.finish();
}

/// N runtimes call every `pace` an upstream that is down for `outage`;
/// returns the calls that reached it while it was down.
fn outage_calls(n: usize, config: &str, stores: impl Fn(usize) -> Arc<dyn StateStore>) -> u64 {
    let outage = Duration::from_secs(3);
    let pace = Duration::from_millis(20);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = Arc::new(AtomicU64::new(0));
    let runtimes: Vec<Runtime> = (0..n).map(|i| runtime(config, stores(i))).collect();
    let began = Instant::now();
    tokio.block_on(async {
        let mut tasks = Vec::new();
        for rt in runtimes {
            let failed = failed.clone();
            tasks.push(tokio::spawn(async move {
                while began.elapsed() < outage {
                    let failed = failed.clone();
                    let _ = rt
                        .call(CallSpec::new("search", "q").idempotent(true), |_| {
                            let failed = failed.clone();
                            async move {
                                failed.fetch_add(1, Ordering::Relaxed);
                                Err::<String, _>(Failure::new(ErrorKind::Connect, "down"))
                            }
                        })
                        .await;
                    tokio::time::sleep(pace).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    failed.load(Ordering::Relaxed)
}

/// The breaker of the outage runs, by trigger.
const TRIGGERS: [(&str, &str); 2] = [
    (
        "5 consecutive failures",
        "failure-threshold = 5, open-for = \"1s\", lease = 0",
    ),
    (
        "failure ratio 0.5 over >= 10 calls",
        "failure-threshold = 0, failure-ratio = 0.5, minimum-calls = 10, open-for = \"1s\", lease = 0",
    ),
];

fn outage(_c: &mut Criterion) {
    let Some(server) = RedisServer::start_or_skip("bench outage") else {
        return;
    };
    for (trigger, breaker) in TRIGGERS {
        let config = BREAKER.replace(
            "failure-threshold = 5, open-for = \"1s\", lease = 0",
            breaker,
        );
        for n in [2, 4, 8] {
            let local = outage_calls(n, &config, |_| {
                Arc::new(mender::state::MemoryState::default())
            });
            let prefix = format!("outage{n}{}", trigger.len());
            // Each runtime gets its own backend (pool, fallback), as a
            // process would.
            let shared = outage_calls(n, &config, |_| redis_store(&server, &prefix));
            println!(
                "outage: {n} processes, 3 s down, a call every 20 ms each, breaker opens on \
                 {trigger}, open 1 s: upstream calls with per-process breakers {local}, \
                 with one shared breaker {shared} ({} saved)",
                local.saturating_sub(shared)
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decisions, outage
}
criterion_main!(benches);
