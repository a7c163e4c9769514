//! Fleet-wide state on a real `redis-server` (started by each test on a
//! free loopback port): runtimes, and a separate process, share one
//! circuit breaker, one retry budget and one rate limit; Redis dying mid-run
//! costs no call its outcome, and shared state resumes when it is back.
//!
//! These run on real time (Redis expires keys on its own clock), with
//! short, generous intervals. Without `redis-server` they print
//! "skipped: …: redis-server not installed", unless `MENDER_REQUIRE_REDIS=1`
//! (set by `./test`).

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

// Where redis_server.rs finds the shared helpers.
use common::tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Script, fail, runtime};
use mender::{CallError, CallSpec, ErrorKind, Failure, Reply, Runtime, Step};
use redis_server::RedisServer;

/// A breaker that asks before every attempt (`lease = 0`), so each process
/// reads the shared circuit at once; 3 failures open it.
const BREAKER: &str = r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 3, open-for = "OPEN_FOR", half-open-probes = 1, lease = 0 }
[services.default]
strategies = ["breaker"]
"#;

fn breaker(open_for: &str) -> String {
    BREAKER.replace("OPEN_FOR", open_for)
}

/// `config` with its state in `redis`.
fn on_redis(config: &str, redis: &RedisServer) -> String {
    format!(
        "{config}\n[state]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"test\"\n",
        redis.url()
    )
}

async fn call(rt: &Runtime, script: &Script) -> Result<Reply<String>, CallError<Failure>> {
    rt.call(CallSpec::new("search", "query").idempotent(true), |_| {
        script.next()
    })
    .await
}

fn rejected_because(e: &CallError<Failure>, reason: &str) -> bool {
    e.history
        .last()
        .is_some_and(|r| r.kind == ErrorKind::Rejected && r.message.contains(reason))
}

fn retries(e: &CallError<Failure>) -> usize {
    e.history
        .iter()
        .filter(|r| matches!(r.step, Step::Retry { .. }))
        .count()
}

/// Fails calls on `rt` until its circuit opens; returns the upstream calls
/// it took.
async fn trip(rt: &Runtime) -> u32 {
    let down = Script::failing(fail(ErrorKind::Connect), 100);
    for _ in 0..10 {
        if let Err(e) = call(rt, &down).await
            && rejected_because(&e, "circuit open")
        {
            return down.calls();
        }
    }
    panic!("the circuit never opened");
}

/// Waits (up to 10 s: the reconnect backoff is capped at 2 s) until every
/// Redis backend of `rt` is shared again.
async fn until_shared(rt: &Runtime) {
    let began = Instant::now();
    while !rt.state_status().iter().all(|s| s.shared) {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            rt.state_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// A current-thread runtime: the Redis backend must not need a second thread.
#[tokio::test]
async fn one_runtimes_outage_opens_the_circuit_for_all_and_one_takes_the_probe() {
    let Some(redis) = RedisServer::start_or_skip("shared breaker") else {
        return;
    };
    let config = on_redis(&breaker("1s"), &redis);
    let (a, b) = (runtime(&config), runtime(&config));

    assert_eq!(trip(&a).await, 3, "A sees the outage: 3 failures open it");
    let up = Script::default();
    let e = call(&b, &up).await.unwrap_err();
    assert!(rejected_because(&e, "circuit open"), "{e}");
    assert_eq!(
        up.calls(),
        0,
        "B never called the upstream it never saw fail"
    );

    // After open-for, A and B both try at once: one probe goes through.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let probes = Arc::new(AtomicU32::new(0));
    let probe = |rt: Runtime| {
        let probes = probes.clone();
        async move {
            rt.call(CallSpec::new("search", "query").idempotent(true), |_| {
                let probes = probes.clone();
                async move {
                    probes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, Failure>("back".to_owned())
                }
            })
            .await
        }
    };
    let (ra, rb) = tokio::join!(probe(a.clone()), probe(b.clone()));
    assert_eq!(probes.load(Ordering::SeqCst), 1, "exactly one probe");
    let (ok, refused) = if ra.is_ok() { (ra, rb) } else { (rb, ra) };
    assert_eq!(ok.unwrap().value, "back");
    let refused = refused.unwrap_err();
    assert!(rejected_because(&refused, "half-open"), "{refused}");
    assert!(a.state_status().iter().all(|s| s.shared && s.outages == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_opens_the_circuit() {
    let Some(redis) = RedisServer::start_or_skip("shared breaker across processes") else {
        return;
    };
    let config = on_redis(&breaker("60s"), &redis);
    let rt = runtime(&config);
    // The same test binary, running only the child test below.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_process_sees_an_outage"])
        .args(["--nocapture", "--test-threads=1"])
        .env("MENDER_TEST_REDIS_URL", redis.url())
        .status()
        .expect("run the child process");
    assert!(status.success(), "the child process failed: {status}");

    let up = Script::default();
    let e = call(&rt, &up).await.unwrap_err();
    assert!(rejected_because(&e, "circuit open"), "{e}");
    assert_eq!(up.calls(), 0);
}

/// The other process of `another_process_opens_the_circuit`.
#[tokio::test]
#[ignore = "run by another_process_opens_the_circuit, as a separate process"]
async fn child_process_sees_an_outage() {
    let url = std::env::var("MENDER_TEST_REDIS_URL")
        .expect("run by another_process_opens_the_circuit with MENDER_TEST_REDIS_URL");
    let config = format!(
        "{}\n[state]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"test\"\n",
        breaker("60s")
    );
    assert_eq!(trip(&runtime(&config)).await, 3);
}

/// Ten calls on each of `a` and `b` at once against a dead upstream (each
/// wants three retries); returns the retries made in all.
async fn retries_of_two(a: &Runtime, b: &Runtime) -> usize {
    let down = Script::failing(fail(ErrorKind::Connect), 1000);
    let many = |rt: Runtime, down: Script| async move {
        let mut made = 0;
        for _ in 0..10 {
            let e = call(&rt, &down).await.unwrap_err();
            made += retries(&e);
        }
        made
    };
    let (x, y) = tokio::join!(
        tokio::spawn(many(a.clone(), down.clone())),
        tokio::spawn(many(b.clone(), down.clone()))
    );
    let made = x.unwrap() + y.unwrap();
    assert_eq!(down.calls() as usize, 20 + made);
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_is_fleet_wide() {
    let Some(redis) = RedisServer::start_or_skip("fleet-wide retry budget") else {
        return;
    };
    let config = on_redis(common::RETRY_BUDGET, &redis);
    let shared = retries_of_two(&runtime(&config), &runtime(&config)).await;
    assert_eq!(shared, 5, "one budget of 5 retries for both runtimes");
    // The same two runtimes on local state: each has its own budget.
    let local = retries_of_two(
        &runtime(common::RETRY_BUDGET),
        &runtime(common::RETRY_BUDGET),
    )
    .await;
    assert_eq!(local, 10);
}

#[tokio::test]
async fn the_rate_limit_is_fleet_wide() {
    let Some(redis) = RedisServer::start_or_skip("fleet-wide rate limit") else {
        return;
    };
    let limiter = r#"
[guardrails]
max-attempts = 1
[plugins.limiter]
bundled = "rate-limiter"
config = { rate = 5, per = "1h", max-wait = 0 }
[services.default]
strategies = ["limiter"]
"#;
    let config = on_redis(limiter, &redis);
    let (a, b) = (runtime(&config), runtime(&config));
    let up = Script::default();
    let mut ok = 0;
    for i in 0..10 {
        match call(if i % 2 == 0 { &a } else { &b }, &up).await {
            Ok(_) => ok += 1,
            Err(e) => assert!(rejected_because(&e, "rate limit"), "{e}"),
        }
    }
    assert_eq!(ok, 5, "5 per hour for the fleet, not per runtime");
    assert_eq!(up.calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_run_falls_back_then_shared_state_resumes() {
    let Some(mut redis) = RedisServer::start_or_skip("redis outage") else {
        return;
    };
    let config = on_redis(&breaker("60s"), &redis);
    let (a, b) = (runtime(&config), runtime(&config));
    let up = Script::default();
    for _ in 0..3 {
        call(&a, &up).await.unwrap();
    }

    redis.kill();
    // Every call still gets its outcome, on local state, in bounded time.
    let began = Instant::now();
    for _ in 0..5 {
        call(&a, &up).await.unwrap();
    }
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(
        a.state_status()
            .iter()
            .all(|s| !s.shared && s.outages == 1 && s.fallback_ops > 0),
        "{:?}",
        a.state_status()
    );
    // A's breaker works on local state; B does not see it (no Redis).
    assert_eq!(trip(&a).await, 3);
    call(&b, &up).await.unwrap();

    redis.restart();
    until_shared(&a).await;
    until_shared(&b).await;
    // Shared again: A's next outage opens the circuit for B.
    assert_eq!(trip(&a).await, 3);
    let before = up.calls();
    let e = call(&b, &up).await.unwrap_err();
    assert!(rejected_because(&e, "circuit open"), "{e}");
    assert_eq!(up.calls(), before);
}

#[tokio::test]
async fn an_unresponsive_redis_costs_a_bounded_wait_then_nothing() {
    // A listener that accepts connections and never answers: every Redis
    // operation times out.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = hole.incoming().collect();
        drop(held);
    });
    let config = format!(
        "{}\n[state]\nbackend = \"redis\"\nurl = \"{url}\"\ntimeout = \"30ms\"\n",
        breaker("60s")
    );
    let began = Instant::now();
    let rt = runtime(&config);
    let up = Script::default();
    for _ in 0..20 {
        call(&rt, &up).await.unwrap();
    }
    assert_eq!(up.calls(), 20);
    assert!(began.elapsed() < Duration::from_secs(10));
    let status = rt.state_status();
    assert!(!status[0].shared && status[0].outages == 1, "{status:?}");
    assert!(status[0].target.starts_with("redis://127.0.0.1:"));
    // The breaker still opens, on local state.
    assert_eq!(trip(&rt).await, 3);
}

/// What a scenario's calls came to, to compare backends.
async fn scenario(config: &str) -> Vec<String> {
    let rt = runtime(config);
    let mut seen = Vec::new();
    let down = Script::failing(fail(ErrorKind::Connect), 4);
    for _ in 0..8 {
        seen.push(match call(&rt, &down).await {
            Ok(r) => format!("ok {}", r.value),
            Err(e) => format!(
                "err {}",
                e.history.last().map_or("", |r| r.message.as_str())
            ),
        });
    }
    seen.push(format!("upstream calls {}", down.calls()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plugins_behave_the_same_on_both_backends() {
    let Some(redis) = RedisServer::start_or_skip("same plugins, both backends") else {
        return;
    };
    let pipeline = r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 3, open-for = "60s", lease = 0 }
[plugins.limiter]
bundled = "rate-limiter"
config = { rate = 6, per = "1h", max-wait = 0 }
[services.default]
strategies = ["limiter", "breaker"]
"#;
    let memory = scenario(pipeline).await;
    let shared = scenario(&on_redis(pipeline, &redis)).await;
    assert_eq!(memory, shared);
    // And the scenario did exercise both plugins.
    assert!(
        memory.iter().any(|s| s.contains("circuit open")),
        "{memory:?}"
    );
    assert!(
        memory.iter().any(|s| s.contains("rate limit")),
        "{memory:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_retries_in_one_process() {
    // No Redis needed: on local state the budget is per process.
    let rt = runtime(common::RETRY_BUDGET);
    let down = Script::failing(fail(ErrorKind::Connect), 1000);
    let mut made = 0;
    let mut refused = 0;
    for _ in 0..10 {
        let e = call(&rt, &down).await.unwrap_err();
        made += retries(&e);
        refused += usize::from(e.reason.contains("retry-budget exhausted"));
    }
    assert_eq!(made, 5);
    assert_eq!(refused, 9, "every call after the budget ran out says why");
}

#[test]
fn the_redis_store_keeps_the_state_contract() {
    use mender::state::{RedisSettings, RedisState, ScopedKey, StateStore};
    let Some(redis) = RedisServer::start_or_skip("redis store contract") else {
        return;
    };
    let store = RedisState::connect(RedisSettings {
        url: redis.url(),
        prefix: "c".into(),
        timeout: Duration::from_millis(500),
        ca_file: None,
    })
    .unwrap();
    let k = |key: &str| ScopedKey {
        plugin: "p".into(),
        service: "s".into(),
        key: key.into(),
    };
    let mut raw = redis.client();
    let pttl = |raw: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("PTTL").arg(key).query(raw).unwrap()
    };

    // increment: the TTL applies when the key is created; a live key keeps it.
    assert_eq!(store.increment(k("n"), 2, Some(300), 0), 2);
    assert_eq!(store.increment(k("n"), 3, Some(60_000), 0), 5);
    assert!((1..=300).contains(&pttl(&mut raw, "c:p:s:n")));
    // A non-integer counts as 0, and keeps its (absent) expiry.
    store.set(k("x"), "open".into(), None, 0);
    assert_eq!(store.increment(k("x"), 4, Some(1000), 0), 4);
    assert_eq!(pttl(&mut raw, "c:p:s:x"), -1);
    // Keys are prefix:plugin:service:key.
    let v: Option<String> = redis::cmd("GET").arg("c:p:s:x").query(&mut raw).unwrap();
    assert_eq!(v.as_deref(), Some("4"));

    // compare-and-swap: absent, expected, wrong, with a TTL.
    assert!(store.compare_and_swap(k("probe"), None, "taken".into(), None, 0));
    assert!(!store.compare_and_swap(k("probe"), None, "taken".into(), None, 0));
    assert!(!store.compare_and_swap(k("probe"), Some("free"), "x".into(), None, 0));
    assert!(store.compare_and_swap(k("probe"), Some("taken"), "free".into(), Some(5000), 0));
    assert_eq!(store.get(&k("probe"), 0).as_deref(), Some("free"));
    assert!((1..=5000).contains(&pttl(&mut raw, "c:p:s:probe")));
    // A zero TTL stores an already-expired value.
    assert!(store.compare_and_swap(k("probe"), Some("free"), "gone".into(), Some(0), 0));
    assert_eq!(store.get(&k("probe"), 0), None);
    store.set(k("y"), "1".into(), Some(0), 0);
    assert_eq!(store.get(&k("y"), 0), None);

    // set replaces value and expiry; delete removes.
    store.set(k("z"), "a".into(), Some(5000), 0);
    store.set(k("z"), "b".into(), None, 0);
    assert_eq!(pttl(&mut raw, "c:p:s:z"), -1);
    store.delete(&k("z"));
    assert_eq!(store.get(&k("z"), 0), None);

    let status = store.status();
    assert!(
        status[0].shared && status[0].fallback_ops == 0,
        "{status:?}"
    );

    // A key of another type (written by someone else): that operation is
    // served locally, and Redis stays in use for the rest.
    let _: () = redis::cmd("LPUSH")
        .arg("c:p:s:list")
        .arg("x")
        .query(&mut raw)
        .unwrap();
    assert_eq!(store.get(&k("list"), 0), None);
    assert_eq!(store.increment(k("list"), 1, None, 0), 1);
    let status = store.status();
    assert!(
        status[0].shared && status[0].outages == 0 && status[0].fallback_ops == 2,
        "{status:?}"
    );
    assert_eq!(store.increment(k("after"), 7, None, 0), 7);
    let v: Option<String> = redis::cmd("GET")
        .arg("c:p:s:after")
        .query(&mut raw)
        .unwrap();
    assert_eq!(v.as_deref(), Some("7"), "still on Redis");

    // The retry budget's operation agrees with the local one.
    common::retry_budget_agrees(&store, k("calls"), k("retries"));
    assert!((1..=60_000).contains(&pttl(&mut raw, "c:p:s:retries")));
    assert_eq!(store.status()[0].fallback_ops, 2, "all on Redis");
}

#[tokio::test]
async fn a_service_can_keep_its_state_local() {
    let Some(redis) = RedisServer::start_or_skip("per-service state") else {
        return;
    };
    let config = on_redis(
        &format!(
            "{}\n[services.local]\nstrategies = [\"breaker\"]\nstate = {{ backend = \"memory\" }}\n",
            breaker("60s")
        ),
        &redis,
    );
    let (a, b) = (runtime(&config), runtime(&config));
    let on = |service: &'static str| CallSpec::new(service, "query").idempotent(true);
    let down = Script::failing(fail(ErrorKind::Connect), 100);
    for _ in 0..3 {
        a.call(on("local"), |_| down.next()).await.unwrap_err();
    }
    let e = a.call(on("local"), |_| down.next()).await.unwrap_err();
    assert!(rejected_because(&e, "circuit open"), "{e}");
    // `local` keeps its state in each process: B's circuit is closed.
    let up = Script::default();
    let r: Reply<String> = b.call(on("local"), |_| up.next()).await.unwrap();
    assert_eq!(r.value, "fresh");
    // Every other service shares it.
    assert_eq!(trip(&a).await, 3);
    let e = call(&b, &up).await.unwrap_err();
    assert!(rejected_because(&e, "circuit open"), "{e}");
    let status = a.state_status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0].services, ["*"]);
}

#[test]
fn a_redis_too_slow_for_writes_is_not_retried_in_a_tight_loop() {
    use mender::state::{RedisSettings, RedisState, ScopedKey, StateStore};
    let Some(redis) = RedisServer::start_or_skip("slow redis") else {
        return;
    };
    let store = RedisState::connect(RedisSettings {
        url: redis.url(),
        prefix: "slow".into(),
        timeout: Duration::from_millis(50),
        ca_file: None,
    })
    .unwrap();
    // Writes (and scripts) hang for 3 s; PING and reads still answer, so
    // every reconnection succeeds and the next write times out again.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("WRITE")
        .query(&mut redis.client())
        .unwrap();
    let key = ScopedKey {
        plugin: "p".into(),
        service: "s".into(),
        key: "n".into(),
    };
    let began = Instant::now();
    let mut slowest = Duration::ZERO;
    while began.elapsed() < Duration::from_millis(1500) {
        let op = Instant::now();
        store.increment(key.clone(), 1, None, 0);
        slowest = slowest.max(op.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let outages = store.status()[0].outages;
    // Backoff after each quick relapse: 100, 200, 400, 800 ms... rather
    // than one timed-out write every 100 ms (15 in 1.5 s).
    assert!((2..=6).contains(&outages), "{outages} outages");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}

/// A test CA and a certificate it signed for `localhost`, made with
/// openssl in `dir`: (ca, cert, key).
fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        ]
        .into_iter()
        .chain(["-days", "2", "-subj", "/CN=mender redis test CA"])
        .collect::<Vec<_>>(),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// `rediss://`: state shared over TLS with a redis-server whose
/// certificate a private CA signed, trusted through `ca-file`; the system
/// roots do not know that CA, so without `ca-file` (or with another CA)
/// the link is refused and the host serves local state.
#[test]
fn rediss_with_a_private_ca_and_without_it() {
    use mender::state::{RedisSettings, RedisState, ScopedKey, StateStore};
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let Some(redis) = RedisServer::start_tls_or_skip("rediss", &cert, &key, &ca) else {
        return;
    };
    let settings = |ca_file: Option<std::path::PathBuf>| RedisSettings {
        url: redis.tls_url(),
        prefix: "tls".into(),
        timeout: Duration::from_millis(1000),
        ca_file,
    };
    let k = ScopedKey {
        plugin: "p".into(),
        service: "s".into(),
        key: "k".into(),
    };

    let store = RedisState::connect(settings(Some(ca.clone()))).unwrap();
    store.set(k.clone(), "over tls".into(), None, 0);
    let [status] = &store.status()[..] else {
        panic!("one backend")
    };
    assert!(status.shared && status.outages == 0, "{status:?}");
    assert_eq!(status.target, redis.tls_url());
    // It reached the server (read back on the plain port).
    let v: Option<String> = redis::cmd("GET")
        .arg("tls:p:s:k")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(v.as_deref(), Some("over tls"));

    // Neither the system roots nor another CA trust the server.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = test_ca(other.path());
    for ca_file in [None, Some(other_ca)] {
        let store = RedisState::connect(settings(ca_file.clone())).unwrap();
        store.set(k.clone(), "local".into(), None, 0);
        let [status] = &store.status()[..] else {
            panic!("one backend")
        };
        assert!(
            !status.shared && status.outages == 1,
            "{ca_file:?}: {status:?}"
        );
    }
    let v: Option<String> = redis::cmd("GET")
        .arg("tls:p:s:k")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(
        v.as_deref(),
        Some("over tls"),
        "nothing reached Redis without trust"
    );

    // A CA file that is not PEM certificates is an error naming it.
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello").unwrap();
    let e = RedisState::connect(settings(Some(bad.clone())))
        .err()
        .unwrap_or_default();
    assert!(e.contains("not-a-ca.pem"), "{e}");
}

/// Without redis-server a test skips, saying so past the harness's
/// capture, unless MENDER_REQUIRE_REDIS=1, which fails it.
#[test]
fn without_redis_server_a_test_skips_unless_required() {
    common::tools::assert_skips_unless_required(
        common::tools::Suite::Redis,
        "the_retry_budget_is_fleet_wide",
        &[("PATH", "/nonexistent")],
    );
}
