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
