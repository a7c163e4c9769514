//! Hostile plugins: each attack runs in a real component through the real
//! host. For each, the host survives, the call completes with the plugin's
//! on-fault mode within a time bound, the reason is reported clearly, and
//! healthy traffic alongside is unaffected.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Script, fail};
use mender::{CallError, CallSpec, ErrorKind, Failure, Reply, Runtime, Step};

/// Generous bound on one call facing an attack: the hook deadline (500 ms)
/// plus an epoch tick, plus instantiating a fresh instance, on a loaded
/// 2-core CI machine. The behaviour under test is that it is bounded at all.
const BOUND: Duration = Duration::from_secs(5);

fn hostile(attack: &str, hook: &str, on_fault: &str) -> Runtime {
    let toml = format!(
        r#"
[guardrails]
max-attempts = 3
[limits]
hook-timeout = "500ms"
memory-mib = {memory}
quarantine-after = 0
[plugins.hostile]
path = "{dir}/hostile-strategy.wasm"
on-fault = "{on_fault}"
config = {{ attack = "{attack}", in = "{hook}" }}
[plugins.backoff]
bundled = "exponential-backoff"
config = {{ base = "10ms", jitter = "none" }}
[services.default]
strategies = ["hostile", "backoff"]
"#,
        dir = env!("MENDER_GUEST_DIR"),
        // Room for huge-fallback's 16 MiB answer; little for the others, so
        // the memory bomb hits the limit long before the deadline.
        memory = if attack == "huge-fallback" { 64 } else { 16 },
    );
    Runtime::builder()
        .config_str(&toml, "hostile.toml")
        .unwrap()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one call that fails once, against a fail-closed hostile plugin, and
/// returns the call's error (which carries the fault) and the time taken.
async fn attacked(attack: &str, hook: &str) -> (CallError<Failure>, Duration) {
    let rt = hostile(attack, hook, "fail-closed");
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let started = Instant::now();
    let result: Result<Reply<String>, _> = rt
        .call(CallSpec::new("api", "get").idempotent(true), |_| {
            script.next()
        })
        .await;
    let took = started.elapsed();
    assert!(took < BOUND, "{attack}: took {took:?}");
    let faults = rt
        .plugins()
        .into_iter()
        .find(|p| p.name == "hostile")
        .unwrap()
        .faults;
    assert_eq!(faults, 1, "{attack}: the fault is counted");
    (result.expect_err(attack), took)
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_the_deadline() {
    let (err, took) = attacked("loop", "on-error").await;
    let reason = &err.reason;
    assert!(
        reason.contains("exceeded its deadline of 500ms in on-error"),
        "{reason}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "stopped before the deadline: {took:?}"
    );
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let (err, _) = attacked("memory", "on-error").await;
    assert!(
        err.reason.contains("exceeded its memory limit"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn deep_recursion_overflows_its_own_stack() {
    let (err, _) = attacked("recursion", "on-error").await;
    assert!(
        err.reason.contains("overflowed its stack"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn panic_is_a_trap_named_as_such() {
    let (err, _) = attacked("panic", "on-error").await;
    assert!(err.reason.contains("trapped (panic"), "{}", err.reason);
}

#[tokio::test]
async fn huge_answers_are_refused() {
    let (err, _) = attacked("huge-fallback", "on-error").await;
    let reason = &err.reason;
    assert!(
        reason.contains("a fallback body of 16777216 bytes"),
        "{reason}"
    );
    // A faulting admission refuses the attempt (fail-closed): the fault is
    // the refused attempt's message.
    let (err, _) = attacked("huge-fallback", "admit").await;
    assert_eq!(err.kind, ErrorKind::Rejected);
    let refused = &err.history[0].message;
    assert!(
        refused.contains("a rejection reason of 16777216 bytes"),
        "{refused}"
    );
}

#[tokio::test]
async fn ambient_clock_is_absent() {
    let (err, _) = attacked("wall-clock", "on-error").await;
    assert!(err.reason.contains("plugin `hostile`"), "{}", err.reason);
}

#[tokio::test]
async fn state_flood_is_cut_off() {
    let (err, _) = attacked("state-flood", "on-error").await;
    assert!(err.reason.contains("exceeds the limit"), "{}", err.reason);
}

#[tokio::test(start_paused = true)]
async fn absurd_retry_delay_is_clamped() {
    let rt = hostile("absurd-delay", "on-error", "fail-closed");
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let reply: Reply<String> = rt
        .call(CallSpec::new("api", "get").idempotent(true), |_| {
            script.next()
        })
        .await
        .unwrap();
    // A delay of u64::MAX ms became the guardrail's max-delay (30 s).
    assert!(
        matches!(reply.history[0].step, Step::Retry { delay, .. } if delay == Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn endless_admission_waits_end() {
    let rt = hostile("absurd-delay", "admit", "fail-closed");
    let script = Script::default();
    let err = rt
        .call(CallSpec::new("api", "get").idempotent(true), |_| {
            script.next()
        })
        .await
        .map(|r: Reply<String>| r.value)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(script.calls(), 0);
    assert!(
        err.history[0].message.contains("waiting"),
        "{:?}",
        err.history
    );
}

#[tokio::test]
async fn no_files_env_or_sockets() {
    // Listing environment variables panics on this target (there is no
    // environment), so that attack ends in a trap, reported as a fault.
    let (err, _) = attacked("read-env", "on-error").await;
    assert!(err.reason.contains("trapped (panic"), "{}", err.reason);
    for attack in ["read-file", "socket"] {
        let rt = hostile(attack, "on-error", "fail-closed");
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let err = rt
            .call(CallSpec::new("api", "get"), |_| script.next())
            .await
            .map(|r: Reply<String>| r.value)
            .unwrap_err();
        // The plugin reports what it got back: an error, never data.
        assert!(err.reason.contains("Err("), "{attack}: {}", err.reason);
        assert!(
            !err.reason.contains("root:"),
            "{attack} read /etc/passwd: {}",
            err.reason
        );
        assert!(
            !err.reason.contains("/root") && !err.reason.contains("/home"),
            "{attack}: {}",
            err.reason
        );
    }
}

#[test]
fn a_future_contract_version_is_refused_by_name() {
    let toml = format!(
        "[plugins.future]\npath = \"{}/contract-v0-9.wasm\"\n",
        env!("MENDER_GUEST_DIR")
    );
    let err = Runtime::builder()
        .config_str(&toml, "t.toml")
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("plugin `future`"), "{err}");
    assert!(err.contains("mender:plugin/strategy@0.9.0"), "{err}");
    assert!(
        err.contains("a contract version this host does not implement"),
        "{err}"
    );
    // The message lists what the host does implement.
    assert!(err.contains("mender:plugin/strategy@0.1.0"), "{err}");
    assert!(err.contains("mender:plugin/strategy@0.2.0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_attacks_leave_healthy_traffic_alone() {
    let healthy = Runtime::builder()
        .config_str(
            "[plugins.b]\nbundled = \"circuit-breaker\"\n[services.default]\nstrategies = [\"b\"]\n",
            "healthy.toml",
        )
        .unwrap()
        .build()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let mut traffic = Vec::new();
    for _ in 0..4 {
        let (rt, served) = (healthy.clone(), served.clone());
        traffic.push(tokio::spawn(async move {
            for i in 0..200 {
                let r: Reply<String> = rt
                    .call(CallSpec::new("healthy", "get"), |_| async move {
                        tokio::task::yield_now().await;
                        Ok::<_, Failure>(format!("ok {i}"))
                    })
                    .await
                    .unwrap();
                assert_eq!(r.value, format!("ok {i}"));
                served.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for attack in [
        "loop",
        "memory",
        "recursion",
        "panic",
        "huge-fallback",
        "state-flood",
    ] {
        let rt = hostile(attack, "on-error", "fail-open");
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let started = Instant::now();
        let reply: Reply<String> = rt
            .call(CallSpec::new("api", "get").idempotent(true), |_| {
                script.next()
            })
            .await
            .unwrap_or_else(|e| panic!("{attack}: {e}"));
        assert_eq!(
            reply.value, "fresh",
            "{attack}: the next strategy still retried"
        );
        assert!(started.elapsed() < BOUND, "{attack}");
    }
    for t in traffic {
        t.await.unwrap();
    }
    assert_eq!(served.load(Ordering::SeqCst), 800);
}

#[tokio::test(start_paused = true)]
async fn repeated_faults_quarantine_then_readmit() {
    let toml = format!(
        r#"
[guardrails]
max-attempts = 1
[plugins.hostile]
path = "{}/hostile-strategy.wasm"
limits = {{ quarantine-after = 3, quarantine-window = "1m", quarantine-for = "30s" }}
config = {{ attack = "panic", in = "on-error" }}
[services.default]
strategies = ["hostile"]
"#,
        env!("MENDER_GUEST_DIR")
    );
    let rt = Runtime::builder()
        .config_str(&toml, "q.toml")
        .unwrap()
        .build()
        .unwrap();
    let status = || rt.plugins().into_iter().next().unwrap();
    for _ in 0..5 {
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let _ = rt
            .call(CallSpec::new("api", "get"), |_| script.next())
            .await
            .map(|r: Reply<String>| r.value);
    }
    // Each call asks admit (which behaves) and on-error (which panics):
    // three calls fault three times, then two calls skip both hooks.
    let s = status();
    assert_eq!(
        (s.hook_calls, s.faults, s.skipped, s.quarantines),
        (6, 3, 4, 1)
    );
    assert_eq!(s.quarantined_for_ms, Some(30_000));

    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        status().quarantined_for_ms,
        None,
        "re-admitted after the cool-down"
    );
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let _ = rt
        .call(CallSpec::new("api", "get"), |_| script.next())
        .await
        .map(|r: Reply<String>| r.value);
    assert_eq!(status().hook_calls, 8, "called again after the cool-down");
}

/// Making a new instance for a call (instantiation and `init`) is bounded
/// by the call's deadline, not only by `init-timeout`, and runs off the
/// async runtime's threads: on this single-threaded runtime, a task beside
/// the call keeps running while the plugin's slow `init` is cut off.
#[tokio::test]
async fn a_new_instance_is_bounded_by_the_calls_deadline_and_blocks_no_task() {
    let toml = format!(
        r#"
[limits]
init-timeout = "30s"
[plugins.slow]
path = "{}/slow-init-strategy.wasm"
[services.default]
strategies = ["slow"]
"#,
        env!("MENDER_GUEST_DIR")
    );
    let rt = Runtime::builder()
        .config_str(&toml, "slow.toml")
        .unwrap()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    // The first instance traps in its first on-error and is dropped, so
    // the pool is empty: the next call's on-error needs a new instance,
    // whose init takes 5 s.
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let first = rt
        .call(CallSpec::new("api", "get"), |_| script.next())
        .await
        .map(|r: Reply<String>| r.value)
        .unwrap_err();
    assert!(first.reason.contains("no strategy"), "{}", first.reason);

    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let started = Instant::now();
    let err = rt
        .call(
            CallSpec::new("api", "get").deadline(Duration::from_secs(1)),
            |_| script.next(),
        )
        .await
        .map(|r: Reply<String>| r.value)
        .unwrap_err();
    let took = started.elapsed();
    let ticked = ticks.load(Ordering::SeqCst);
    ticker.abort();
    // Well under the 5 s init, generously over the 1 s deadline.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    // ~50 ticks in a second; blocked, there would be none until the end.
    assert!(ticked >= 5, "the runtime's other task ran {ticked} times");
    // The plugin was cut off (fail-open: no opinion), so nothing retried.
    assert!(err.reason.contains("no strategy"), "{}", err.reason);
}
