//! The shared circuit breaker's failure count is fleet-wide: N processes
//! (runtimes with their own Redis connections) on one Redis open the
//! circuit after `failure-threshold` failures in all, not N × threshold.
//! The figures printed here are the ones in `bench/redis-results.md`.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::tools;
use common::{call_down, runtime};
use mender::Runtime;
use redis_server::RedisServer;

const THRESHOLD: u64 = 5;

/// A breaker that asks before every attempt (`lease = 0`) and opens after
/// 5 consecutive failures.
fn breaker(open_for: &str, state: &str) -> String {
    format!(
        r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = {{ failure-threshold = {THRESHOLD}, open-for = "{open_for}", half-open-probes = 1, lease = 0 }}
[services.default]
strategies = ["breaker"]
{state}
"#
    )
}

fn on_redis(redis: &RedisServer, prefix: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}\"\ntimeout = \"1s\"",
        redis.url()
    )
}

/// The processes call in turn until one is refused; the upstream calls
/// that took.
async fn attempts_until_open(fleet: &[Runtime]) -> u64 {
    let reached = AtomicU64::new(0);
    for _ in 0..100 {
        for rt in fleet {
            if !call_down(rt, &reached).await {
                return reached.load(Ordering::SeqCst);
            }
        }
    }
    panic!("the circuit never opened");
}

/// Each process calls every 20 ms while the upstream is down for 3 s (the
/// circuit open for 1 s at a time); the upstream calls that took.
async fn outage(fleet: Vec<Runtime>) -> u64 {
    let reached = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for rt in fleet {
        let reached = reached.clone();
        tasks.push(tokio::spawn(async move {
            while began.elapsed() < Duration::from_secs(3) {
                call_down(&rt, &reached).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    reached.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_opens_the_circuit_after_the_threshold_in_all() {
    let Some(redis) = RedisServer::start_or_skip("fleet-wide breaker count") else {
        return;
    };
    for n in [2u64, 8] {
        let fleet = |open_for: &str, prefix: &str| -> Vec<Runtime> {
            (0..n)
                .map(|_| runtime(&breaker(open_for, &on_redis(&redis, prefix))))
                .collect()
        };
        // In turn: every failure is reported at its process's next
        // admission, so the fleet pays the threshold plus one attempt per
        // other process still in flight, however many processes there are.
        let shared = attempts_until_open(&fleet("60s", &format!("turn{n}"))).await;
        let own: Vec<Runtime> = (0..n).map(|_| runtime(&breaker("60s", ""))).collect();
        let per_process = attempts_until_open_each(&own).await;
        assert_eq!(
            shared,
            THRESHOLD + n - 1,
            "a fleet of {n} paid {shared} attempts to open one shared circuit"
        );
        // In step, calling every 20 ms through a 3 s outage.
        let shared_outage = outage(fleet("1s", &format!("outage{n}"))).await;
        let own_outage = outage((0..n).map(|_| runtime(&breaker("1s", ""))).collect()).await;
        let _ = writeln!(
            std::io::stderr(),
            "fleet of {n}: to open: shared {shared}, per-process breakers {per_process}; \
             3 s outage: shared {shared_outage}, per-process {own_outage}"
        );
        assert!(
            shared_outage < own_outage,
            "fleet of {n}: shared {shared_outage}, per-process {own_outage}"
        );
    }
}

/// Per-process breakers: every process must open its own circuit; the
/// upstream calls until all have.
async fn attempts_until_open_each(fleet: &[Runtime]) -> u64 {
    let reached = AtomicU64::new(0);
    for rt in fleet {
        while call_down(rt, &reached).await {}
    }
    reached.load(Ordering::SeqCst)
}
