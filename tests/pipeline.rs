//! The bundled plugins driven through the real host: backoff, circuit
//! breaker, fallbacks, credential refresh, and the lease fast path.
//! Virtual time (`start_paused`) makes every wait instant and exact.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Script, fail, runtime};
use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime, ServedBy, Step};

async fn call(
    rt: &Runtime,
    script: &Script,
    spec: CallSpec,
) -> Result<Reply<String>, mender::CallError<Failure>> {
    rt.call(spec, |_| script.next()).await
}

fn retry_delays(history: &[mender::AttemptRecord]) -> Vec<u64> {
    history
        .iter()
        .filter_map(|r| match r.step {
            Step::Retry { delay, .. } => Some(delay.as_millis() as u64),
            _ => None,
        })
        .collect()
}

const BACKOFF_NO_JITTER: &str = r#"
[guardrails]
max-attempts = 6
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "100ms", factor = 2.0, max-delay = "10s", max-attempts = 6, jitter = "none" }
[services.default]
strategies = ["backoff"]
"#;

#[tokio::test(start_paused = true)]
async fn backoff_without_jitter_doubles_exactly() {
    let rt = runtime(BACKOFF_NO_JITTER);
    let script = Script::failing(fail(ErrorKind::Connect), 4);
    let started = tokio::time::Instant::now();
    let reply = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap();
    assert_eq!(reply.value, "fresh");
    assert_eq!(reply.served_by, ServedBy::Upstream);
    assert_eq!(retry_delays(&reply.history), vec![100, 200, 400, 800]);
    assert_eq!(script.calls(), 5);
    // Backoff declared only `on-error`: one hook call per failure, none
    // before attempts.
    assert_eq!(rt.plugins()[0].hook_calls, 4);
    // The host really waited (in virtual time) what it recorded.
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn backoff_full_jitter_stays_within_bounds() {
    let rt = runtime(&BACKOFF_NO_JITTER.replace("jitter = \"none\"", "jitter = \"full\""));
    let mut seen = Vec::new();
    for _ in 0..20 {
        let script = Script::failing(fail(ErrorKind::Timeout), 3);
        let reply = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
            .await
            .unwrap();
        let delays = retry_delays(&reply.history);
        for (i, d) in delays.iter().enumerate() {
            assert!(*d <= 100 << i, "attempt {i}: {d} > {}", 100 << i);
        }
        seen.extend(delays);
    }
    seen.sort_unstable();
    seen.dedup();
    assert!(
        seen.len() > 10,
        "full jitter should spread delays: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_honours_retry_after_and_gives_up() {
    let rt = runtime(BACKOFF_NO_JITTER);
    let limited = fail(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(3));
    let script = Script::failing(limited, 1);
    let reply = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap();
    assert_eq!(retry_delays(&reply.history), vec![3000]);

    let script = Script::failing(fail(ErrorKind::Resource), 10);
    let err = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap_err();
    assert_eq!(err.history.len(), 6);
    assert_eq!(script.calls(), 6);
    assert!(err.reason.contains("backoff"), "{}", err.reason);
    assert_eq!(err.kind, ErrorKind::Resource);
}

#[tokio::test(start_paused = true)]
async fn backoff_does_not_retry_auth_or_tool_errors() {
    let rt = runtime(BACKOFF_NO_JITTER);
    for kind in [ErrorKind::Auth, ErrorKind::Tool] {
        let script = Script::failing(fail(kind), 5);
        let err = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
            .await
            .unwrap_err();
        assert_eq!(script.calls(), 1, "{kind} must not be retried");
        assert!(
            err.reason.contains("no strategy chose to retry"),
            "{}",
            err.reason
        );
    }
}

const BREAKER: &str = r#"
[guardrails]
max-attempts = 1
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 3, open-for = "10s", half-open-probes = 1 }
[services.default]
strategies = ["breaker"]
"#;

#[tokio::test(start_paused = true)]
async fn breaker_opens_half_opens_and_closes() {
    let rt = runtime(BREAKER);
    let spec = || CallSpec::new("api", "get").idempotent(true);
    let down = Script::failing(fail(ErrorKind::Connect), 100);
    for _ in 0..3 {
        assert_eq!(
            call(&rt, &down, spec()).await.unwrap_err().kind,
            ErrorKind::Connect
        );
    }
    assert_eq!(down.calls(), 3);
    // Open: refused without calling the upstream, with a retry-after hint.
    let err = call(&rt, &down, spec()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(
        down.calls(),
        3,
        "an open circuit must not call the upstream"
    );
    assert!(
        err.history[0].message.contains("circuit open"),
        "{:?}",
        err.history
    );

    // After open-for: one probe goes through; it fails, so the circuit re-opens.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        call(&rt, &down, spec()).await.unwrap_err().kind,
        ErrorKind::Connect
    );
    assert_eq!(down.calls(), 4);
    assert_eq!(
        call(&rt, &down, spec()).await.unwrap_err().kind,
        ErrorKind::Rejected
    );
    assert_eq!(down.calls(), 4);

    // Next window: the probe succeeds and the circuit closes.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let up = Script::default();
    assert!(call(&rt, &up, spec()).await.is_ok());
    for _ in 0..5 {
        assert!(call(&rt, &up, spec()).await.is_ok());
    }
    assert_eq!(up.calls(), 6);
    let transitions = rt.plugin_metrics().counters();
    let count = |name: &str| {
        transitions
            .iter()
            .filter(|((p, _, n), _)| p == "breaker" && n == name)
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    assert_eq!(count("transitions_to_open"), 2);
    assert_eq!(count("transitions_to_half_open"), 2);
    assert_eq!(count("transitions_to_closed"), 1);
}

#[tokio::test(start_paused = true)]
async fn breaker_ignores_auth_failures() {
    let rt = runtime(BREAKER);
    let script = Script::failing(fail(ErrorKind::Auth), 10);
    for _ in 0..6 {
        let err = call(&rt, &script, CallSpec::new("api", "get"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
    }
    assert_eq!(script.calls(), 6, "auth errors must not trip the breaker");
}

#[tokio::test(start_paused = true)]
async fn successes_under_a_lease_make_no_wasm_call() {
    let rt = runtime(BREAKER);
    let up = Script::default();
    for _ in 0..1000 {
        call(&rt, &up, CallSpec::new("api", "get")).await.unwrap();
    }
    let breaker = rt
        .plugins()
        .into_iter()
        .find(|p| p.name == "breaker")
        .unwrap();
    // The first admit grants a lease (ttl 5s by default, in virtual time
    // barely advanced): every later success is admitted natively.
    assert!(
        breaker.hook_calls <= 2,
        "{} admit calls for 1000 successes",
        breaker.hook_calls
    );
}

const FALLBACKS: &str = r#"
[guardrails]
max-attempts = 1
[plugins.cached]
bundled = "cached-fallback"
config = { max-age = "1m" }
[plugins.static]
bundled = "static-fallback"
config = { operations = { search = '{"items":[]}' } }
[services.default]
fallbacks = ["cached", "static"]
"#;

#[tokio::test(start_paused = true)]
async fn cached_then_static_fallback() {
    let rt = runtime(FALLBACKS);
    let spec = |key: &str| {
        CallSpec::new("api", "search")
            .idempotent(true)
            .result_key(key)
    };
    let ok = Script::new([Ok("answer for rust".to_owned())]);
    call(&rt, &ok, spec("rust")).await.unwrap();

    tokio::time::sleep(Duration::from_secs(5)).await;
    let down = Script::failing(fail(ErrorKind::Connect), 10);
    let reply = call(&rt, &down, spec("rust")).await.unwrap();
    assert_eq!(reply.value, "answer for rust");
    assert_eq!(
        reply.served_by,
        ServedBy::Fallback {
            plugin: "cached".into(),
            age: Some(Duration::from_secs(5))
        }
    );

    // Another question has no recorded answer: the static one serves.
    let reply = call(&rt, &down, spec("go")).await.unwrap();
    assert_eq!(reply.value, r#"{"items":[]}"#);
    assert_eq!(
        reply.served_by,
        ServedBy::Fallback {
            plugin: "static".into(),
            age: None
        }
    );

    // Past max-age the cached answer is not served.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let reply = call(&rt, &down, spec("rust")).await.unwrap();
    assert_eq!(
        reply.served_by,
        ServedBy::Fallback {
            plugin: "static".into(),
            age: None
        }
    );

    // A write's result is never recorded, so never replayed: with no static
    // answer for it either, the call fails, with its history.
    let ok = Script::new([Ok("created #1".to_owned())]);
    let _: Reply<String> = rt
        .call(CallSpec::new("api", "delete"), |_| ok.next())
        .await
        .unwrap();
    let err = rt
        .call(CallSpec::new("api", "delete"), |_| down.next())
        .await
        .map(|r: Reply<String>| r.value)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connect);
}

#[tokio::test(start_paused = true)]
async fn refresh_credentials_then_retry() {
    let toml = r#"
[plugins.backoff]
bundled = "exponential-backoff"
config = { jitter = "none", kinds = { auth = { action = "refresh-credentials" } } }
[services.default]
strategies = ["backoff"]
"#;
    let refreshed = Arc::new(AtomicU32::new(0));
    let counter = refreshed.clone();
    let rt = Runtime::builder()
        .config_str(toml, "test.toml")
        .unwrap()
        .credentials("github", move |service: String| {
            let counter = counter.clone();
            async move {
                assert_eq!(service, "github");
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let script = Script::failing(fail(ErrorKind::Auth).with_status(401), 1);
    // Not idempotent: a refresh-and-retry is still allowed, since the
    // upstream refused before acting.
    let reply = call(&rt, &script, CallSpec::new("github", "create_issue"))
        .await
        .unwrap();
    assert_eq!(reply.value, "fresh");
    assert_eq!(refreshed.load(Ordering::SeqCst), 1);
    assert!(matches!(
        reply.history[0].step,
        Step::RefreshCredentials { .. }
    ));

    // A second 401 after a refresh fails: one refresh per call.
    let script = Script::failing(fail(ErrorKind::Auth), 5);
    let err = call(&rt, &script, CallSpec::new("github", "create_issue"))
        .await
        .unwrap_err();
    assert!(
        err.reason.contains("max-credential-refreshes"),
        "{}",
        err.reason
    );
    assert_eq!(script.calls(), 2);

    // No provider for a service: a clear reason.
    let script = Script::failing(fail(ErrorKind::Auth), 1);
    let err = call(&rt, &script, CallSpec::new("gitlab", "get"))
        .await
        .unwrap_err();
    assert!(
        err.reason.contains("no credential provider"),
        "{}",
        err.reason
    );
}

/// Issue #19: a contract 0.1 plugin (`noop-strategy`, built with
/// wit-bindgen on `wit/since_v0.1.0`) and a 0.2 plugin (`echo-strategy`,
/// built with the guest SDK) in one pipeline. The 0.1 plugin is asked
/// first and passes; the 0.2 plugin then fails the call with what it was
/// given, which shows that the strings 0.2 no longer passes inline
/// (service, operation, message, tags, failures per kind) reach it through
/// `current`, exactly as 0.1 passed them.
#[tokio::test(start_paused = true)]
async fn a_v0_1_and_a_v0_2_plugin_decide_in_one_pipeline() {
    let toml = r#"
[plugins.old]
path = "{guests}/noop-strategy.wasm"
[plugins.new]
path = "{guests}/echo-strategy.wasm"
[services.default]
strategies = ["old", "new"]
"#
    .replace("{guests}", env!("MENDER_GUEST_DIR"));
    let rt = runtime(&toml);
    let contracts: Vec<(String, mender::Contract)> = rt
        .plugins()
        .into_iter()
        .map(|p| (p.name, p.contract))
        .collect();
    assert!(
        contracts.contains(&("old".into(), mender::Contract::V0_1))
            && contracts.contains(&("new".into(), mender::Contract::V0_2)),
        "{contracts:?}"
    );
    let failure = Failure::new(ErrorKind::Timeout, "upstream took too long")
        .with_status(504)
        .with_tag("server", "eu-1");
    let script = Script::failing(failure, 1);
    let spec = CallSpec::new("github", "GET /repos")
        .idempotent(true)
        .tag("team", "infra");
    let err = call(&rt, &script, spec).await.unwrap_err();
    let json = &err.reason[err.reason.find('{').expect("echo's JSON")..];
    let seen: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(seen["service"], "github", "{seen}");
    assert_eq!(seen["operation"], "GET /repos", "{seen}");
    assert_eq!(seen["message"], "upstream took too long", "{seen}");
    assert_eq!(seen["kind"], "timeout", "{seen}");
    assert_eq!(seen["status"], 504, "{seen}");
    assert_eq!(seen["attempt"], 1, "{seen}");
    assert_eq!(seen["idempotent"], true, "{seen}");
    let tags = seen["tags"].as_array().expect("tags");
    for pair in [["team", "infra"], ["server", "eu-1"]] {
        assert!(
            tags.contains(&serde_json::json!(pair)),
            "{pair:?} missing: {seen}"
        );
    }
    assert_eq!(seen["recent"]["failures"], 1, "{seen}");
    assert_eq!(seen["recent"]["failures-by-kind"]["timeout"], 1, "{seen}");
    // Each was asked before the attempt (admit) and after its failure
    // (on-error): the 0.1 plugin's pass let the 0.2 plugin decide.
    for p in rt.plugins() {
        assert_eq!(p.hook_calls, 2, "{}: {p:?}", p.name);
    }
}

/// The other order, and a 0.1 plugin that decides: the 0.2 no-op passes,
/// the 0.1 `fixed-retry` (hand-written WAT) retries a connect failure after
/// its fixed 50 ms, and the call then succeeds.
#[tokio::test(start_paused = true)]
async fn a_v0_2_plugin_passes_to_a_v0_1_plugin_that_retries() {
    let toml = r#"
[plugins.new]
path = "{guests}/noop-strategy-v0-2.wasm"
[plugins.old]
path = "{wat}/fixed-retry.wasm"
[services.default]
strategies = ["new", "old"]
"#
    .replace("{guests}", env!("MENDER_GUEST_DIR"))
    .replace(
        "{wat}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/guests-wat"),
    );
    let rt = runtime(&toml);
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let reply = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap();
    assert_eq!(reply.value, "fresh");
    assert_eq!(retry_delays(&reply.history), vec![50]);
    match &reply.history[0].step {
        Step::Retry { by, .. } => assert_eq!(by, "old"),
        other => panic!("expected old's retry, got {other:?}"),
    }
}

/// Contract 0.2's additions to `outcomes`, read by the 0.2 `echo-strategy`
/// through `current`: the successes' latency summary with the span of host
/// time it covers, and failures in a row per kind (ended by a success).
#[tokio::test(start_paused = true)]
async fn a_v0_2_plugin_reads_latencies_and_streaks_per_kind() {
    let rt = runtime(
        "[plugins.echo]\npath = \"{guests}/echo-strategy.wasm\"\n[services.default]\nstrategies = [\"echo\"]\n",
    );
    let spec = || CallSpec::new("api", "get").idempotent(true);
    let answer_after = |ms: u64| {
        move |_| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Failure>("fresh".to_owned())
        }
    };
    // What echo answered: its on-error JSON (the call's failure reason).
    let echoed = |err: mender::CallError<Failure>| -> serde_json::Value {
        let json = &err.reason[err.reason.find('{').expect("echo's JSON")..];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    };
    let failing = |kind| {
        let script = Script::failing(fail(kind), 1);
        move |_| {
            let script = script.clone();
            async move { script.next().await }
        }
    };

    // A success of 30 ms; echo's admit took the report before it.
    rt.call(spec(), answer_after(30)).await.unwrap();
    tokio::time::advance(Duration::from_millis(1_000)).await;
    // Echo's admit refuses a call tagged so, with `recent` as JSON: the
    // refusal is the message of the `rejected` event its on-error echoes.
    let err = rt
        .call(spec().tag("echo-admit", "reject"), answer_after(0))
        .await
        .unwrap_err();
    let refused: serde_json::Value =
        serde_json::from_str(echoed(err)["message"].as_str().expect("message")).unwrap();
    let latency = &refused["recent"]["latency"];
    assert_eq!(latency["count"], 1, "{refused}");
    assert_eq!(latency["sum"], 30, "{refused}");
    assert_eq!(latency["sum-of-squares"], 900, "{refused}");
    // From the first call's admit to this one: its 30 ms and the 1 s after.
    assert_eq!(latency["span"], 1_030, "{refused}");

    let streaks = |v: serde_json::Value| v["recent"]["consecutive-failures-by-kind"].clone();
    let err = rt
        .call(spec(), failing(ErrorKind::Timeout))
        .await
        .unwrap_err();
    assert_eq!(streaks(echoed(err)), serde_json::json!({"timeout": 1}));
    let err = rt
        .call(spec(), failing(ErrorKind::Timeout))
        .await
        .unwrap_err();
    assert_eq!(streaks(echoed(err)), serde_json::json!({"timeout": 2}));
    let err = rt
        .call(spec(), failing(ErrorKind::Connect))
        .await
        .unwrap_err();
    let seen = echoed(err);
    assert_eq!(
        streaks(seen.clone()),
        serde_json::json!({"connect": 1, "timeout": 2}),
        "{seen}"
    );
    assert_eq!(seen["recent"]["consecutive-failures"], 3, "{seen}");
    // A success ends every streak.
    rt.call(spec(), answer_after(5)).await.unwrap();
    let err = rt
        .call(spec(), failing(ErrorKind::Connect))
        .await
        .unwrap_err();
    assert_eq!(streaks(echoed(err)), serde_json::json!({"connect": 1}));
}
