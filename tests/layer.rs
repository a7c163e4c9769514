//! The tower `Layer`: a tower `Service`'s errors and HTTP responses become
//! error events, handled by the bundled plugins.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use mender::{ErrorKind, FALLBACK_HEADER, ResilienceLayer, Step};
use tower::{BoxError, ServiceExt, service_fn};
use tower_layer::Layer;

const CONFIG: &str = r#"
[guardrails]
max-attempts = 3
max-delay = "10s"

[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "10ms", jitter = "none" }

[plugins.static]
bundled = "static-fallback"
config = { operations = { "GET /search" = '{"degraded":true}' } }

[services.api]
strategies = ["backoff"]
fallbacks = ["static"]
"#;

/// A service answering from `statuses` in turn (the last one repeats),
/// counting requests.
fn upstream(
    statuses: &'static [(u16, Option<&'static str>)],
    hits: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<String>,
    Response = Response<String>,
    Error = BoxError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<String>| {
        let n = hits.fetch_add(1, Ordering::SeqCst) as usize;
        let (status, retry_after) = statuses[n.min(statuses.len() - 1)];
        async move {
            let mut resp = Response::new(format!("{} {}", req.method(), req.uri().path()));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", secs.parse().unwrap());
            }
            Ok::<_, BoxError>(resp)
        }
    })
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_until_a_success() {
    let rt = common::runtime(CONFIG);
    let hits = Arc::new(AtomicU32::new(0));
    let svc = ResilienceLayer::new(rt, "api").layer(upstream(
        &[(503, None), (502, None), (200, None)],
        hits.clone(),
    ));
    let resp = svc.oneshot(get("/items")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "GET /items");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let rt = common::runtime(CONFIG);
    let hits = Arc::new(AtomicU32::new(0));
    let svc = ResilienceLayer::new(rt, "api")
        .layer(upstream(&[(429, Some("2")), (200, None)], hits.clone()));
    let started = tokio::time::Instant::now();
    let resp = svc.oneshot(get("/items")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_not_repeated_and_its_response_comes_back() {
    let rt = common::runtime(CONFIG);
    let hits = Arc::new(AtomicU32::new(0));
    let svc =
        ResilienceLayer::new(rt, "api").layer(upstream(&[(503, None), (200, None)], hits.clone()));
    let post = Request::post("/items").body("new".to_owned()).unwrap();
    let resp = svc.oneshot(post).await.unwrap();
    assert_eq!(
        resp.status(),
        503,
        "the server's own answer, not a made-up error"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_read_that_keeps_failing_gets_the_fallback() {
    let rt = common::runtime(CONFIG);
    let hits = Arc::new(AtomicU32::new(0));
    let svc = ResilienceLayer::new(rt, "api").layer(upstream(&[(500, None)], hits.clone()));
    let resp = svc.oneshot(get("/search")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), r#"{"degraded":true}"#);
    assert_eq!(resp.headers()[FALLBACK_HEADER], "static");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn service_errors_are_classified_and_returned_with_the_history() {
    let rt = common::runtime(CONFIG);
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let refused = service_fn(move |_req: Request<String>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            Err::<Response<String>, BoxError>(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connect to 127.0.0.1:9: refused",
            )))
        }
    });
    let svc = ResilienceLayer::new(rt, "api").layer(refused);
    let err = svc.oneshot(get("/items")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connect);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(err.history.len(), 3);
    assert!(matches!(err.history[0].step, Step::Retry { .. }));
    let source = err.source.expect("the service's last error");
    assert!(source.to_string().contains("refused"));
}
