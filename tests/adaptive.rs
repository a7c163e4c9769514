//! Contract 0.2's concurrency and latency signals against a real slow
//! upstream: an HTTP server on 127.0.0.1 whose latency the test turns up
//! and down, called through `Runtime::call` over real sockets.
//!
//! * the `bulkhead` plugin's limit falls when latency rises and recovers
//!   when it falls, and the attempts in flight at the upstream never pass
//!   the limit it reported nor the `max-in-flight` guardrail;
//! * `adaptive-timeout` cuts a stuck call off near mean + 3σ of the
//!   latencies it saw, not at the static attempt timeout;
//! * the circuit breaker opens on slow successes (slow-call rate);
//! * a 0.1 plugin decides in the same pipeline as these.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mender::{CallSpec, ErrorKind, GiveUp, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The upstream: answers every request after `delay_ms`, and measures how
/// many requests it holds at once.
#[derive(Default)]
struct Upstream {
    delay_ms: AtomicU64,
    in_flight: AtomicU32,
    peak: AtomicU32,
    served: AtomicU64,
}

impl Upstream {
    /// Starts serving on a free port of 127.0.0.1.
    async fn start(delay_ms: u64) -> (Arc<Upstream>, std::net::SocketAddr) {
        let up = Arc::new(Upstream::default());
        up.delay_ms.store(delay_ms, SeqCst);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serving.clone().answer(socket));
            }
        });
        (up, addr)
    }

    async fn answer(self: Arc<Self>, mut socket: TcpStream) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(SeqCst))).await;
        self.in_flight.fetch_sub(1, SeqCst);
        self.served.fetch_add(1, SeqCst);
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
    }

    /// Starts a new measuring period: the peak so far is forgotten.
    fn reset_peak(&self) {
        self.peak.store(self.in_flight.load(SeqCst), SeqCst);
    }
}

/// One HTTP GET over a new connection: the body, or the I/O error.
async fn get(addr: std::net::SocketAddr) -> Result<String, std::io::Error> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    s.read_to_string(&mut response).await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!("bad response: {response:?}"))),
    }
}

async fn call(
    rt: &Runtime,
    service: &str,
    addr: std::net::SocketAddr,
) -> Result<mender::Reply<String>, mender::CallError<std::io::Error>> {
    rt.call(
        CallSpec::new(service.to_owned(), "GET /").idempotent(true),
        |_| get(addr),
    )
    .await
}

/// `callers` tasks making `each` calls apiece on `service`; how many
/// were answered.
async fn load(
    rt: &Arc<Runtime>,
    service: &str,
    addr: std::net::SocketAddr,
    callers: usize,
    each: usize,
) -> usize {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (rt, service) = (rt.clone(), service.to_owned());
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..each {
                    if call(&rt, &service, addr).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    ok
}

/// The value a plugin last set for its gauge `name` on `service`.
fn gauge(rt: &Runtime, plugin: &str, service: &str, name: &str) -> f64 {
    let gauges = rt.plugin_metrics().gauges();
    let key = (plugin.to_owned(), service.to_owned(), name.to_owned());
    *gauges
        .get(&key)
        .unwrap_or_else(|| panic!("no gauge {key:?} in {gauges:?}"))
}

fn runtime(toml: &str) -> Arc<Runtime> {
    Arc::new(common::runtime(toml))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bulkhead_limit_falls_with_latency_and_recovers_under_the_guardrail() {
    const GUARDRAIL: u32 = 12;
    let rt = runtime(&format!(
        r#"
[guardrails]
deadline = "off"
max-in-flight = {GUARDRAIL}
max-queued = 1000
queue-timeout = "1h"
[plugins.bulkhead]
bundled = "bulkhead"
config = {{ initial-limit = 10, min-limit = 2, max-limit = 40, backoff-ratio = 0.8, latency-target = "100ms" }}
[services.slow]
strategies = ["bulkhead"]
"#
    ));
    let (up, addr) = Upstream::start(5).await;

    // Fast: the limit is used and grows, up to what the guardrail lets run.
    let answered = load(&rt, "slow", addr, 16, 15).await;
    assert!(answered > 0);
    let fast_limit = gauge(&rt, "bulkhead", "slow", "concurrency_limit");
    assert!(fast_limit > 10.0, "the limit grew under load: {fast_limit}");
    assert!(
        up.peak.load(SeqCst) <= GUARDRAIL,
        "the guardrail caps the upstream: {}",
        up.peak.load(SeqCst)
    );

    // Slow: successes past the latency target cut the limit.
    up.delay_ms.store(300, SeqCst);
    load(&rt, "slow", addr, 16, 3).await;
    let slow_limit = gauge(&rt, "bulkhead", "slow", "concurrency_limit");
    assert!(
        slow_limit < fast_limit && slow_limit < f64::from(GUARDRAIL),
        "the limit fell with latency: {fast_limit} -> {slow_limit}"
    );

    // Still slow, from a limit it reported: the limit only falls from
    // here, and every attempt is admitted under it, so the upstream never
    // holds more than the limit reported at the start.
    up.reset_peak();
    load(&rt, "slow", addr, 16, 2).await;
    let peak = up.peak.load(SeqCst);
    assert!(
        f64::from(peak) <= slow_limit,
        "{peak} in flight at the upstream under a limit of {slow_limit}"
    );

    // Fast again: the limit recovers.
    up.delay_ms.store(5, SeqCst);
    load(&rt, "slow", addr, 16, 15).await;
    let recovered = gauge(&rt, "bulkhead", "slow", "concurrency_limit");
    assert!(
        recovered > slow_limit,
        "the limit recovered: {slow_limit} -> {recovered}"
    );
    assert!(up.peak.load(SeqCst) <= GUARDRAIL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_timeout_cuts_a_stuck_call_near_mean_plus_three_sigma() {
    const STATIC_TIMEOUT_MS: u64 = 10_000;
    let rt = runtime(&format!(
        r#"
[guardrails]
deadline = "off"
attempt-timeout = "{STATIC_TIMEOUT_MS}ms"
max-attempts = 1
[plugins.timeout]
bundled = "adaptive-timeout"
config = {{ initial = "10s", min = "20ms", min-samples = 10, lease = 0 }}
[services.api]
strategies = ["timeout"]
"#
    ));
    let (up, addr) = Upstream::start(20).await;
    // Latencies of 20 and 60 ms, alternating: mean 40, σ 20 -> 100 ms
    // (a little more: a real socket adds its own time to each).
    for i in 0..30 {
        up.delay_ms.store(if i % 2 == 0 { 20 } else { 60 }, SeqCst);
        call(&rt, "api", addr).await.unwrap();
    }
    up.delay_ms.store(60_000, SeqCst);
    let began = Instant::now();
    let err = call(&rt, "api", addr).await.unwrap_err();
    let took = began.elapsed();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    let timeout = gauge(&rt, "timeout", "api", "attempt_timeout_ms");
    assert!(
        (80.0..1_000.0).contains(&timeout),
        "about mean + 3σ of 20/60 ms latencies (100 ms), plus socket time: {timeout}"
    );
    assert!(
        err.history[0]
            .message
            .contains(&format!("attempt timed out after {timeout}ms")),
        "{:?}",
        err.history[0].message
    );
    assert!(
        took < Duration::from_millis(STATIC_TIMEOUT_MS / 2),
        "cut off at {took:?}, not at the static {STATIC_TIMEOUT_MS}ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_slow_successes_beside_a_v0_1_plugin() {
    let rt = runtime(
        r#"
[guardrails]
deadline = "off"
max-attempts = 1
[plugins.old]
path = "{guests}/noop-strategy.wasm"
[plugins.bulkhead]
bundled = "bulkhead"
config = { initial-limit = 4, latency-target = "1s" }
[plugins.timeout]
bundled = "adaptive-timeout"
config = { initial = "5s", lease = 0 }
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 0, slow-call-threshold = "50ms", slow-call-rate = 0.5, minimum-calls = 4, open-for = "1m", lease = 0 }
[services.api]
strategies = ["old", "bulkhead", "timeout", "breaker"]
"#,
    );
    let contracts: Vec<_> = rt.plugins().into_iter().map(|p| p.contract).collect();
    assert!(contracts.contains(&mender::Contract::V0_1), "{contracts:?}");
    let (up, addr) = Upstream::start(100).await;
    // Four successes, each slower than 50 ms: every call was slow.
    for _ in 0..4 {
        call(&rt, "api", addr).await.unwrap();
    }
    let served = up.served.load(SeqCst);
    let err = call(&rt, "api", addr).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err:?}");
    assert!(
        err.history[0].message.contains("circuit open"),
        "{:?}",
        err.history[0].message
    );
    assert!(
        matches!(
            err.cause,
            GiveUp::NoRetry { .. } | GiveUp::NoStrategy { .. }
        ),
        "{:?}",
        err.cause
    );
    assert_eq!(
        up.served.load(SeqCst),
        served,
        "the open circuit spared the upstream"
    );
}
