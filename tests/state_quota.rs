//! The state quota against a plugin that writes 255 new 64 KiB keys on
//! every failing call (16 MiB a call): the host (and Redis) stay bounded
//! and the plugin faults, naming itself, the service and the quota. The
//! tests of this binary take turns (`ONE_AT_A_TIME`), so the process's RSS
//! is the running test's.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Mutex;
use std::time::Duration;

use common::tools;
use common::{Script, fail};
use mender::state::{RedisSettings, RedisState, ScopedKey, StateQuota, StateStore};
use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime};
use redis_server::RedisServer;

/// Held by each test, so none measures another's memory.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Failing calls made; without a quota each adds 16 MiB of state, so the
/// host would grow by 384 MiB.
const CALLS: usize = 24;

/// Growth of the process allowed over the calls: the quota (1 MiB) plus
/// instances recycled after each fault and allocator slack. A tenth of
/// what the attack would take unbounded.
const RSS_BOUND: u64 = 48 << 20;

/// This process's resident set, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib << 10
}

fn hostile_state_growth(state: &str) -> Runtime {
    let toml = format!(
        r#"
[limits]
hook-timeout = "30s"
quarantine-after = 0
[plugins.hostile]
path = "{}/hostile-strategy.wasm"
on-fault = "fail-closed"
config = {{ attack = "state-growth" }}
[services.default]
strategies = ["hostile"]
{state}
"#,
        env!("MENDER_GUEST_DIR")
    );
    Runtime::builder()
        .config_str(&toml, "quota.toml")
        .unwrap()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Makes `CALLS` failing calls on `rt`, each of which must fault on the
/// quota; returns how much this process grew meanwhile.
fn attack(rt: &Runtime) -> u64 {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = rss_bytes();
    for i in 0..CALLS {
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let err = tokio
            .block_on(rt.call(CallSpec::new("api", "get"), |_| script.next()))
            .map(|r: Reply<String>| r.value)
            .expect_err("the plugin faults, fail-closed");
        let reason = &err.reason;
        assert!(
            reason.contains("plugin `hostile` exceeded its state quota for service `api`"),
            "call {i}: {reason}"
        );
        assert!(
            reason.contains("1048576 bytes, 1024 keys"),
            "call {i}: {reason}"
        );
    }
    let grew = rss_bytes().saturating_sub(before);
    assert_eq!(rt.plugins()[0].faults, CALLS as u64);
    // Still serving: a healthy call goes through.
    let ok = tokio
        .block_on(rt.call(CallSpec::new("api", "get"), |_| async {
            Ok::<_, Failure>("fine".to_owned())
        }))
        .unwrap();
    assert_eq!(ok.value, "fine");
    grew
}

#[test]
fn state_growth_is_bounded_by_the_quota_on_memory() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let grew = attack(&hostile_state_growth(""));
    assert!(
        grew < RSS_BOUND,
        "the host grew by {} MiB over {CALLS} calls",
        grew >> 20
    );
}

/// Redis's own memory use, in bytes.
fn redis_used_memory(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut redis.client())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

#[test]
fn state_growth_is_bounded_by_the_quota_on_redis() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(redis) = RedisServer::start_or_skip("state quota on redis") else {
        return;
    };
    let rt = hostile_state_growth(&format!(
        "[state]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"q\"\ntimeout = \"1s\"",
        redis.url()
    ));
    let before = redis_used_memory(&redis);
    let grew = attack(&rt);
    assert!(rt.state_status()[0].shared, "{:?}", rt.state_status());
    assert_eq!(rt.state_status()[0].fallback_ops, 0, "all on Redis");
    let redis_grew = redis_used_memory(&redis).saturating_sub(before);
    assert!(
        redis_grew < RSS_BOUND,
        "redis grew by {} MiB over {CALLS} calls",
        redis_grew >> 20
    );
    assert!(grew < RSS_BOUND, "the host grew by {} MiB", grew >> 20);
    let keys: u64 = redis::cmd("DBSIZE").query(&mut redis.client()).unwrap();
    assert!(keys <= 1024 + 3, "{keys} keys in Redis");
}

/// On Redis, expired keys leave the scope's accounting (so they make room),
/// deletes free their bytes, and the accounting is shared by every process.
#[test]
fn the_redis_quota_evicts_expired_keys_and_is_fleet_wide() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(redis) = RedisServer::start_or_skip("redis quota eviction") else {
        return;
    };
    let connect = || {
        RedisState::connect(RedisSettings {
            url: redis.url(),
            prefix: "e".into(),
            timeout: Duration::from_millis(500),
            ca_file: None,
        })
        .unwrap()
    };
    let (a, b) = (connect(), connect());
    let k = |key: &str| ScopedKey {
        plugin: "p".into(),
        service: "s".into(),
        key: key.into(),
    };
    let quota = StateQuota {
        max_bytes: 1000,
        max_keys: 4,
    };
    // Two processes fill one scope: 4 keys in all.
    for (store, key) in [(&a, "a1"), (&b, "b1"), (&a, "a2")] {
        store
            .set_within(k(key), "v".repeat(100), Some(300), 0, quota)
            .unwrap();
    }
    assert_eq!(b.increment_within(k("n"), 5, None, 0, quota), Ok(5));
    let e = a
        .set_within(k("a3"), "v".into(), None, 0, quota)
        .unwrap_err();
    assert_eq!(
        (e.keys, e.plugin.as_str(), e.service.as_str()),
        (5, "p", "s")
    );
    assert!(
        b.compare_and_swap_within(k("c"), None, "x".into(), None, 0, quota)
            .is_err()
    );
    // Too many bytes: refused, and nothing written.
    let e = b
        .set_within(k("n"), "v".repeat(800), None, 0, quota)
        .unwrap_err();
    assert!(e.bytes > 1000, "{e}");
    assert_eq!(a.get(&k("n"), 0).as_deref(), Some("5"));
    assert_eq!(a.increment_within(k("n"), 1, None, 0, quota), Ok(6));
    // Deleting frees a key's room at once; expiry frees the rest.
    a.delete(&k("a1"));
    b.set_within(k("b2"), "v".into(), None, 0, quota).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    for key in ["x1", "x2"] {
        a.set_within(k(key), "v".repeat(300), None, 0, quota)
            .unwrap();
    }
    let mut raw = redis.client();
    let bytes: u64 = redis::cmd("GET")
        .arg("e:p:s#bytes")
        .query(&mut raw)
        .unwrap();
    // n = "6", b2 = "v", x1 and x2 = 300 bytes each, plus the key names.
    assert_eq!(bytes, (1 + 1) + (2 + 1) + 2 * (2 + 300));
    let sizes: u64 = redis::cmd("HLEN")
        .arg("e:p:s#sizes")
        .query(&mut raw)
        .unwrap();
    assert_eq!(sizes, 4);
}
