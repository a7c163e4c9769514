//! Fleet-wide state on a real Redis Cluster (three `redis-server` masters
//! on loopback, formed by `redis-cli --cluster create`), through a
//! `redis+cluster://` URL: two runtimes share one circuit breaker; the
//! store's every operation (the Lua writes with their quota bookkeeping,
//! the retry budget's two counters) runs on the cluster, none falls back
//! to local state, so each script's keys hash to one slot; and the scopes
//! spread over the nodes.
//!
//! Without `redis-server` these print "skipped: …", unless
//! `MENDER_REQUIRE_REDIS=1` (set by `./test`).

mod common;
#[path = "common/redis_cluster.rs"]
mod redis_cluster;
#[path = "common/redis_server.rs"]
mod redis_server;

// Where redis_server.rs finds the shared helpers.
use common::tools;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{call_down, runtime};
use mender::Runtime;
use mender::state::{RedisSettings, RedisState, ScopedKey, StateStore};
use redis_cluster::RedisCluster;

const THRESHOLD: u64 = 4;

fn breaker_on(url: &str) -> String {
    format!(
        r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = {{ failure-threshold = {THRESHOLD}, open-for = "60s", half-open-probes = 1, lease = 0 }}
[services.default]
strategies = ["breaker"]
[state]
backend = "redis"
url = "{url}"
prefix = "fleet"
timeout = "1s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_share_one_breaker_through_the_cluster() {
    let Some(cluster) = RedisCluster::start_or_skip("breaker on a Redis Cluster") else {
        return;
    };
    let fleet = [
        runtime(&breaker_on(&cluster.url())),
        runtime(&breaker_on(&cluster.url())),
    ];
    // In turn until one is refused: the threshold in all, plus one attempt
    // by the other process still on its way (as on one server).
    let reached = AtomicU64::new(0);
    let mut refused = false;
    'calls: for _ in 0..50 {
        for rt in &fleet {
            if !call_down(rt, &reached).await {
                refused = true;
                break 'calls;
            }
        }
    }
    assert!(refused, "the shared circuit never opened");
    assert_eq!(reached.load(Ordering::SeqCst), THRESHOLD + 1);
    // Both now refuse: the circuit is the fleet's.
    for rt in &fleet {
        assert!(!call_down(rt, &reached).await);
        let status = rt.state_status();
        assert!(
            status.iter().all(|s| s.shared && s.fallback_ops == 0),
            "{status:?}"
        );
        assert!(
            status[0].target.starts_with("redis+cluster://127.0.0.1:"),
            "{status:?}"
        );
    }
    // The breaker's keys are in the cluster, under the scope's hash tag.
    let mut c = cluster.client();
    let stored: Vec<String> = cluster
        .nodes
        .iter()
        .flat_map(|n| {
            redis::cmd("KEYS")
                .arg("{fleet:*")
                .query::<Vec<String>>(&mut n.client())
                .unwrap()
        })
        .collect();
    assert!(
        stored
            .iter()
            .any(|k| k.starts_with("{fleet:breaker:search}:")),
        "{stored:?}"
    );
    let _: () = redis::cmd("PING").query(&mut c).unwrap();
}

#[test]
fn every_store_operation_runs_on_the_cluster() {
    let Some(cluster) = RedisCluster::start_or_skip("store on a Redis Cluster") else {
        return;
    };
    let settings = RedisSettings {
        url: cluster.url(),
        prefix: "c".into(),
        timeout: Duration::from_millis(500),
        ca_file: None,
    };
    let (a, b) = (
        RedisState::connect(settings.clone()).unwrap(),
        RedisState::connect(settings).unwrap(),
    );
    let k = |service: &str, key: &str| ScopedKey {
        plugin: "p".into(),
        service: service.into(),
        key: key.into(),
    };
    // Scopes on every node: 30 services' keys land on all three masters.
    for i in 0..30 {
        let s = format!("svc{i}");
        assert_eq!(a.increment(k(&s, "n"), 2, Some(60_000), 0), 2);
        assert_eq!(b.increment(k(&s, "n"), 3, None, 0), 5, "b sees a's count");
        a.set(k(&s, "mode"), "open".into(), None, 0);
        assert_eq!(b.get(&k(&s, "mode"), 0).as_deref(), Some("open"));
        assert!(b.compare_and_swap(k(&s, "mode"), Some("open"), "half".into(), None, 0));
        assert!(!a.compare_and_swap(k(&s, "mode"), Some("open"), "x".into(), None, 0));
        a.delete(&k(&s, "mode"));
        assert_eq!(b.get(&k(&s, "mode"), 0), None);
    }
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| {
            redis::cmd("KEYS")
                .arg("{c:p:svc*")
                .query::<Vec<String>>(&mut n.client())
                .unwrap()
                .len()
        })
        .collect();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys per node: {per_node:?}"
    );

    // The retry budget's two counters, in one script, agree with the local
    // store's answers.
    common::retry_budget_agrees(&a, k("search", "calls"), k("search", "retries"));
    // Not one operation was served locally: no script crossed slots.
    for store in [&a, &b] {
        let s = &store.status()[0];
        assert!(s.shared && s.fallback_ops == 0 && s.outages == 0, "{s:?}");
    }
}

#[test]
fn a_bad_cluster_url_is_an_error_at_its_line() {
    let e = Runtime::builder()
        .config_str(
            "[state]\nbackend = \"redis\"\nurl = \"redis+cluster://u:hunter2@a:1,b:2/3\"\n",
            "fleet.toml",
        )
        .err()
        .expect("a cluster has no database 3")
        .to_string();
    assert!(
        e.contains("fleet.toml:3") && e.contains("database 0"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}
