//! Routing (contract 0.2) end to end: the bundled `failover` plugin over
//! two real HTTP upstreams on 127.0.0.1. The primary stops: the call that
//! finds it down is retried on the backup, and the calls after it go to
//! the backup at their first attempt (the primary is ejected); the
//! primary comes back: traffic returns once the ejection has ended and
//! the probe succeeds.

mod common;

use std::time::{Duration, Instant};

use common::http_upstream::{HttpUpstream, get};
use mender::{CallSpec, Reply, Runtime};

/// The ejection the plugin is configured with.
const EJECT_FOR: Duration = Duration::from_millis(400);

fn runtime() -> Runtime {
    common::runtime(
        r#"
[plugins.failover]
bundled = "failover"
config = { eject-after = 1, eject-for = "400ms", lease = "50ms" }
[services.api]
strategies = ["failover"]
"#,
    )
}

/// One call with the primary and the backup as its upstreams; each
/// attempt goes where the call tells it.
async fn call(rt: &Runtime, upstreams: &[String]) -> Reply<String> {
    let spec = CallSpec::new("api", "GET /")
        .idempotent(true)
        .upstreams(upstreams.iter().cloned());
    rt.call(spec, |attempt| {
        let index = attempt.upstream.expect("the call names upstreams") as usize;
        let addr = upstreams[index].clone();
        async move { get(&addr).await }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_primary_fails_over_to_the_backup_and_gets_its_traffic_back() {
    let mut primary = HttpUpstream::start("primary").await;
    let backup = HttpUpstream::start("backup").await;
    let upstreams = vec![primary.addr.to_string(), backup.addr.to_string()];
    let rt = runtime();

    let reply = call(&rt, &upstreams).await;
    assert_eq!((reply.value.as_str(), reply.history.len()), ("primary", 0));

    // The primary stops: the call that finds it down is retried on the
    // backup, and the primary is ejected.
    primary.stop().await;
    // The ejection starts during this call: no earlier than now.
    let ejected_at = Instant::now();
    let reply = call(&rt, &upstreams).await;
    assert_eq!(reply.value, "backup");
    assert_eq!(reply.history.len(), 1, "{:?}", reply.history);
    assert_eq!(reply.history[0].kind, mender::ErrorKind::Connect);
    assert_eq!(reply.history[0].upstream.as_deref(), Some(&*upstreams[0]));

    // While it is ejected, calls go to the backup at their first attempt.
    for _ in 0..5 {
        let reply = call(&rt, &upstreams).await;
        assert_eq!(reply.value, "backup");
        assert!(reply.history.is_empty(), "{:?}", reply.history);
    }

    // The primary is back at once, but the ejection keeps traffic off it
    // until it ends; then the probe finds it up, and traffic returns.
    primary.restart().await;
    let returned = loop {
        let reply = call(&rt, &upstreams).await;
        assert!(reply.history.is_empty(), "{:?}", reply.history);
        if reply.value == "primary" {
            break Instant::now();
        }
        assert!(
            ejected_at.elapsed() < Duration::from_secs(10),
            "traffic never returned to the primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The host clock counts whole milliseconds: allow for one.
    assert!(
        returned.duration_since(ejected_at) + Duration::from_millis(1) >= EJECT_FOR,
        "the primary took traffic {:?} after its ejection, before the {EJECT_FOR:?} ejection ended",
        returned.duration_since(ejected_at)
    );
    for _ in 0..3 {
        assert_eq!(call(&rt, &upstreams).await.value, "primary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nowhere_to_route_the_call_fails_with_the_upstreams_error() {
    // A call whose only upstream refuses: the plugin has nowhere to route
    // (it passes), so the call fails with the upstream's error, not a
    // plugin fault or a panic.
    let mut down = HttpUpstream::start("down").await;
    down.stop().await;
    let rt = runtime();
    let spec = CallSpec::new("api", "GET /")
        .idempotent(true)
        .upstreams([down.addr.to_string()]);
    let addr = down.addr.to_string();
    let err = rt
        .call(spec, |_| {
            let addr = addr.clone();
            async move { get(&addr).await }
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, mender::ErrorKind::Connect);
    assert_eq!(err.history.len(), 1);
}

/// A pipeline of the echo fixture alone, which answers `retry-on` the
/// upstream its `echo-route` tag names, else `fail` with what it saw.
/// Its hooks get 30 s: what is tested is routing, and on a loaded machine
/// (CI, tests in parallel) the default 100 ms could cut off its JSON.
fn echo_runtime(on_fault: &str) -> Runtime {
    common::runtime(&format!(
        r#"
[limits]
hook-timeout = "30s"
[plugins.echo]
path = "{{guests}}/echo-strategy.wasm"
on-fault = "{on_fault}"
[services.api]
strategies = ["echo"]
"#
    ))
}

/// A call whose first `failures` attempts fail with `connect`; the
/// upstream each attempt was told to use.
async fn call_failing(
    rt: &Runtime,
    spec: CallSpec,
    failures: usize,
) -> (
    Result<Reply<String>, mender::CallError<mender::Failure>>,
    Vec<Option<u32>>,
) {
    let used = std::sync::Mutex::new(Vec::new());
    let result = rt
        .call(spec, |attempt| {
            let mut used = used.lock().unwrap();
            used.push(attempt.upstream);
            let fail = used.len() <= failures;
            async move {
                if fail {
                    Err(common::fail(mender::ErrorKind::Connect))
                } else {
                    Ok("answered".to_owned())
                }
            }
        })
        .await;
    (result, used.into_inner().unwrap())
}

#[tokio::test]
async fn a_wasm_plugin_sees_the_upstreams_and_its_route_is_honoured() {
    let rt = echo_runtime("fail-open");
    // Routed to `b`: the retry goes there and is answered.
    let spec = CallSpec::new("api", "op")
        .idempotent(true)
        .upstreams(["a", "b"])
        .tag("echo-route", "1");
    let (result, used) = call_failing(&rt, spec, 1).await;
    assert_eq!(result.unwrap().history[0].upstream.as_deref(), Some("a"));
    assert_eq!(used, [Some(0), Some(1)]);
    // Not routed: the echo says what `current` told it.
    let spec = CallSpec::new("api", "op")
        .idempotent(true)
        .upstreams(["a", "b"]);
    let (result, _) = call_failing(&rt, spec, 1).await;
    let err = result.unwrap_err();
    let at = err.reason.find('{');
    let json = &err.reason[at.unwrap_or_else(|| panic!("no echo JSON in: {}", err.reason))..];
    let seen: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(seen["upstreams"], serde_json::json!(["a", "b"]));
    assert_eq!(seen["upstream"], 0);
}

#[tokio::test]
async fn a_wasm_plugins_route_past_the_list_is_its_fault_and_never_drops_the_call() {
    // Fail-closed: the call fails with the fault, which names the plugin,
    // the index and the list.
    let rt = echo_runtime("fail-closed");
    let spec = CallSpec::new("api", "op")
        .idempotent(true)
        .upstreams(["a", "b"])
        .tag("echo-route", "7");
    let (result, used) = call_failing(&rt, spec, 1).await;
    let err = result.unwrap_err();
    assert_eq!(used, [Some(0)]);
    let mender::GiveUp::PluginFault(fault) = &err.cause else {
        panic!("{:?}", err.cause)
    };
    assert_eq!(fault.plugin, "echo");
    for part in ["upstream 7", "[\"a\", \"b\"]"] {
        assert!(fault.reason.contains(part), "{part}: {}", fault.reason);
    }
    // Fail-open: the fault is skipped like any other; the call ends with
    // the upstream's failure, not a panic or a lost call.
    let rt = echo_runtime("fail-open");
    let spec = CallSpec::new("api", "op")
        .idempotent(true)
        .upstreams(["a", "b"])
        .tag("echo-route", "7");
    let (result, _) = call_failing(&rt, spec, 1).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, mender::ErrorKind::Connect);
    assert!(
        matches!(err.cause, mender::GiveUp::NoRetry { .. }),
        "{:?}",
        err.cause
    );
}
