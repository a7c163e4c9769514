//! Round trips to Redis per decision, counted by a proxy between mender
//! and a real `redis-server`: a plugin that decides with one `state.batch`
//! costs one trip, however many keys it reads and writes; a lease costs
//! none for the attempts it admits.
//!
//! Without `redis-server` these print "skipped: …", unless
//! `MENDER_REQUIRE_REDIS=1` (set by `./test`).

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/resp_counter.rs"]
mod resp_counter;

// Where redis_server.rs finds the shared helpers.
use common::tools;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Script, runtime};
use mender::state::{
    BatchOp, BatchResult, MemoryState, RedisSettings, RedisState, StateQuota, StateScope,
    StateStore,
};
use mender::{CallSpec, Runtime};
use redis_server::RedisServer;
use resp_counter::RespCounter;

/// `plugins` with the default service's state in Redis through `proxy`.
fn through(plugins: &str, proxy: &RespCounter) -> String {
    format!(
        "[guardrails]\nmax-attempts = 1\n{plugins}\n[state]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"trips\"\n",
        proxy.url()
    )
}

fn proxy_to(redis: &RedisServer) -> RespCounter {
    let addr: SocketAddr = format!("127.0.0.1:{}", redis.port).parse().unwrap();
    RespCounter::start(addr)
}

/// Round trips per call over `calls` successful calls, after a few calls
/// that load the scripts (Redis answers the first `EVALSHA` of a script
/// with `NOSCRIPT`, and the client loads it).
async fn trips_per_call(rt: &Runtime, proxy: &RespCounter, calls: u32) -> f64 {
    let up = Script::default();
    let call = || rt.call(CallSpec::new("search", "q").idempotent(true), |_| up.next());
    for _ in 0..3 {
        call().await.expect("warm-up call");
    }
    let before = proxy.commands();
    for _ in 0..calls {
        call().await.expect("a call within the limit");
    }
    (proxy.commands() - before) as f64 / f64::from(calls)
}

// A current-thread runtime: one instance serves the calls in turn, so its
// remembered `tat` is never stale (another instance's would cost one more
// trip, which the plugin's own tests cover).
#[tokio::test]
async fn the_rate_limiter_decides_in_one_round_trip_and_a_lease_in_none() {
    let Some(redis) = RedisServer::start_or_skip("round trips per decision") else {
        return;
    };
    let proxy = proxy_to(&redis);
    let limiter = |lease: u32| {
        format!(
            "[plugins.limiter]\nbundled = \"rate-limiter\"\nconfig = {{ rate = 1000, per = \"1s\", lease = {lease} }}\n[services.default]\nstrategies = [\"limiter\"]\n"
        )
    };
    let rt = runtime(&through(&limiter(1), &proxy));
    let per_call = trips_per_call(&rt, &proxy, 40).await;
    assert_eq!(
        per_call, 1.0,
        "one batch per admission (a read and a swap were two)"
    );

    // With a lease of 10, one admission in ten asks the plugin.
    let rt = runtime(
        &through(&limiter(10), &proxy).replace("prefix = \"trips\"", "prefix = \"leased\""),
    );
    let per_call = trips_per_call(&rt, &proxy, 40).await;
    assert_eq!(per_call, 0.1, "one trip per lease of 10 slots");
}

// A breaker that asks before every attempt (`lease = 0`), with a failure
// ratio: each decision counts the report in its window and keeps the
// streak. It was two round trips (`get circuit`, `set streak`); on 0.2 it
// is one batch.
#[tokio::test]
async fn the_circuit_breaker_decides_in_one_round_trip() {
    let Some(redis) = RedisServer::start_or_skip("breaker round trips") else {
        return;
    };
    let proxy = proxy_to(&redis);
    let breaker = "[plugins.breaker]\nbundled = \"circuit-breaker\"\nconfig = { lease = 0, failure-ratio = 0.5, minimum-calls = 1000 }\n[services.default]\nstrategies = [\"breaker\"]\n";
    let rt = runtime(&through(breaker, &proxy));
    let per_call = trips_per_call(&rt, &proxy, 40).await;
    assert_eq!(per_call, 1.0, "one batch per admission");
}

/// What a batch does, the same on every backend: in order, `expect`
/// skipping the rest when it does not hold, a failed swap answering with
/// the value found, the quota ending the batch with the writes before it
/// kept.
fn keeps_the_batch_contract(store: &dyn StateStore) {
    let scope = StateScope {
        plugin: "p".into(),
        service: "s".into(),
    };
    let get = |key: &str| BatchOp::Get { key: key.into() };
    let inc = |key: &str, delta| BatchOp::Increment {
        key: key.into(),
        delta,
        ttl_ms: None,
    };
    let run = |ops: &[BatchOp]| {
        store
            .batch_within(&scope, ops, 0, StateQuota::UNLIMITED)
            .unwrap()
    };
    let swap = |expected: Option<&str>, value: &str| BatchOp::CompareAndSwap {
        key: "c".into(),
        expected: expected.map(str::to_string),
        value: value.into(),
        ttl_ms: None,
    };
    let expect = |value: Option<&str>| BatchOp::Expect {
        key: "c".into(),
        value: value.map(str::to_string),
    };

    assert_eq!(
        run(&[
            get("n"),
            inc("n", 2),
            inc("n", 3),
            get("n"),
            swap(None, "closed"),
            swap(None, "open")
        ]),
        vec![
            BatchResult::Value(None),
            BatchResult::Number(2),
            BatchResult::Number(5),
            BatchResult::Value(Some("5".into())),
            BatchResult::Done,
            BatchResult::Value(Some("closed".into())),
        ]
    );
    // An expectation that holds lets the rest run; one that does not says
    // what it found and skips the rest.
    assert_eq!(
        run(&[expect(Some("closed")), inc("n", 1)]),
        vec![BatchResult::Done, BatchResult::Number(6)]
    );
    assert_eq!(
        run(&[expect(None), inc("n", 1), get("n")]),
        vec![
            BatchResult::Value(Some("closed".into())),
            BatchResult::Skipped,
            BatchResult::Skipped
        ]
    );
    assert_eq!(store.get(&scope.key("n"), 0).as_deref(), Some("6"));
    assert_eq!(
        run(&[
            BatchOp::Set {
                key: "t".into(),
                value: "x".into(),
                ttl_ms: Some(60_000)
            },
            BatchOp::Delete { key: "c".into() },
            get("c"),
            get("t")
        ]),
        vec![
            BatchResult::Done,
            BatchResult::Done,
            BatchResult::Value(None),
            BatchResult::Value(Some("x".into()))
        ]
    );

    // Over the quota: the batch stops at the refused write with the
    // plugin's error; what came before it stays.
    let tight = StateQuota {
        max_bytes: 1 << 20,
        max_keys: 3,
    };
    let other = StateScope {
        plugin: "p".into(),
        service: "quota".into(),
    };
    let e = store
        .batch_within(
            &other,
            &[
                inc("a", 1),
                inc("b", 1),
                inc("c", 1),
                inc("d", 1),
                inc("a", 1),
            ],
            0,
            tight,
        )
        .unwrap_err();
    assert_eq!(
        (e.plugin.as_str(), e.service.as_str(), e.keys),
        ("p", "quota", 4),
        "{e}"
    );
    assert_eq!(store.get(&other.key("c"), 0).as_deref(), Some("1"));
    assert_eq!(store.get(&other.key("d"), 0), None);
    assert_eq!(
        store.get(&other.key("a"), 0).as_deref(),
        Some("1"),
        "nothing after the refusal ran"
    );
}

#[test]
fn batches_behave_the_same_in_memory_and_on_redis() {
    keeps_the_batch_contract(&MemoryState::default());
    let Some(redis) = RedisServer::start_or_skip("batch contract on redis") else {
        return;
    };
    let store = RedisState::connect(RedisSettings {
        url: redis.url(),
        prefix: "b".into(),
        timeout: Duration::from_millis(500),
        ca_file: None,
    })
    .unwrap();
    keeps_the_batch_contract(&store);
    // All of it on Redis, none served locally.
    let status = &store.status()[0];
    assert!(status.shared && status.fallback_ops == 0, "{status:?}");
    let mut raw = redis.client();
    let n: Option<String> = redis::cmd("GET").arg("b:p:s:n").query(&mut raw).unwrap();
    assert_eq!(n.as_deref(), Some("6"));
}
