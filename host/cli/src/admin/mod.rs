//! The operator's listener (`--admin ADDR`): the live status page at `/`
//! (`page.rs`), `/healthz`, `/readyz`, `/status`, `/logs` and `/metrics`
//! over HTTP, apart from the data plane (the MCP
//! client's stdio), as Envoy keeps its admin port apart from its
//! listeners.
//!
//! The endpoints have no authentication, so the listener binds loopback
//! only unless `--admin-public` says otherwise. The Prometheus recorder is
//! installed here, by the command, and only with `--admin`: the core and
//! the gateway emit through the `metrics` facade and never know which
//! exporter, if any, listens.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mender_mcp::StatusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod page;
pub(crate) use page::show_demo_runtime;

/// Hook calls from a leased-out no-op (microseconds) to a plugin near its
/// time limit: ×2.5 steps from 10 µs to 250 ms.
const HOOK_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25,
];

/// Call durations from a cached fallback (well under a millisecond) to a
/// call that waited out retries and a slow upstream (a minute); roughly
/// ×2.5 steps, so 14 buckets per service.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histograms are drained and idle series checked between
/// scrapes; a scrape drains too, so this only bounds memory between them.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// `--admin ADDR` as given, checked: one address to bind.
pub(crate) fn parse_addr(addr: &str, public: bool) -> Result<SocketAddr, String> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            format!("--admin {addr}: not an address to listen on ({e}); e.g. 127.0.0.1:9464")
        })?
        .collect();
    let Some(first) = resolved.first().copied() else {
        return Err(format!("--admin {addr}: the name resolves to no address"));
    };
    if !public && resolved.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "--admin {addr} is not a loopback address: the admin endpoints (metrics, status) \
             have no authentication, so they listen on loopback only (e.g. 127.0.0.1:9464); \
             add --admin-public to serve them on {addr} anyway"
        ));
    }
    Ok(first)
}

/// Installs the process's Prometheus recorder and describes every family
/// to it (`# HELP`); everything emitted through the `metrics` facade from
/// then on is rendered by the handle.
pub(crate) fn install_recorder() -> Result<PrometheusHandle, String> {
    let full = |name: &str| Matcher::Full(name.to_owned());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(full("mender_call_duration_seconds"), DURATION_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(full("mender_attempt_duration_seconds"), DURATION_BUCKETS)
        })
        .and_then(|b| b.set_buckets_for_metric(full("mender_hook_duration_seconds"), HOOK_BUCKETS))
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    mender::describe_metrics();
    mender_mcp::describe_metrics();
    Ok(handle)
}

/// `mender demo [--watch] --admin ADDR`: the listener on its own thread,
/// the demo as usual, then the endpoints stay up until the process is
/// interrupted, so what the script did can be scraped after it ended.
pub(crate) fn demo_with(args: &crate::AdminArgs, demo: impl FnOnce() -> ExitCode) -> ExitCode {
    let Some(addr) = &args.admin else {
        return demo();
    };
    let started = parse_addr(addr, args.admin_public)
        .and_then(|addr| install_recorder().map(|handle| (addr, handle)))
        .and_then(|(addr, handle)| spawn_thread(addr, handle));
    let bound = match started {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("mender demo: {e}");
            return ExitCode::from(2);
        }
    };
    out!("admin: http://{bound} (the status page; /metrics, /healthz, /readyz)");
    let code = demo();
    if code != ExitCode::SUCCESS {
        return code;
    }
    out!("admin: the demo is over; http://{bound}/metrics is served until interrupted (Ctrl-C)");
    loop {
        std::thread::park();
    }
}

/// What the routes read.
struct Admin {
    metrics: PrometheusHandle,
    /// The gateway's status; `None` in the demo, which has no upstreams.
    gateway: Option<StatusHandle>,
}

/// Serves the admin routes on `listener` until the process ends.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    gateway: Option<StatusHandle>,
) -> std::io::Result<()> {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/", get(page::page))
        .route("/api/activity", get(page::activity))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/logs", get(logs))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(Admin { metrics, gateway }));
    axum::serve(listener, app).await
}

/// Binds `addr` on a thread of its own with its own (real-time) runtime:
/// the demo runs its script in virtual time, where a listener would have
/// no clock to wait on. Returns the bound address.
pub(crate) fn spawn_thread(
    addr: SocketAddr,
    metrics: PrometheusHandle,
) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("--admin {addr}: cannot listen: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("mender-admin".to_owned())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the admin listener's runtime");
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = serve(l, metrics, None).await {
                            eprintln!("mender: admin listener stopped: {e}");
                        }
                    }
                    Err(e) => eprintln!("mender: admin listener: {e}"),
                }
            });
        })
        .map_err(|e| format!("cannot start the admin listener's thread: {e}"))?;
    Ok(bound)
}

fn json(code: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_default();
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        text + "\n",
    )
        .into_response()
}

/// 200 when every required upstream is ready, else 503 naming those that
/// are not, with their state and last error.
async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let Some(gateway) = &admin.gateway else {
        return json(
            StatusCode::OK,
            &serde_json::json!({ "ready": true, "not_ready": [] }),
        );
    };
    let status = gateway.snapshot();
    let waiting: Vec<serde_json::Value> = status
        .not_ready()
        .iter()
        .map(|u| {
            serde_json::json!({
                "name": u.name,
                "state": u.state,
                "last_error": u.last_error,
            })
        })
        .collect();
    let code = if waiting.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        code,
        &serde_json::json!({ "ready": waiting.is_empty(), "not_ready": waiting }),
    )
}

/// What `mender status --json` prints, from the same snapshot.
async fn status(State(admin): State<Arc<Admin>>) -> Response {
    match &admin.gateway {
        Some(gateway) => json(StatusCode::OK, &gateway.snapshot()),
        None => (
            StatusCode::NOT_FOUND,
            "no gateway here: /status is served by `mender mcp-proxy --admin`\n",
        )
            .into_response(),
    }
}

/// `/logs?server=NAME&after_seq=N&since_unix_ms=T` (each optional): the
/// local servers' kept stderr, as `mender logs --json` reads it.
async fn logs(State(admin): State<Arc<Admin>>, uri: axum::http::Uri) -> Response {
    let Some(gateway) = &admin.gateway else {
        return (
            StatusCode::NOT_FOUND,
            "no gateway here: /logs is served by `mender mcp-proxy --admin`\n",
        )
            .into_response();
    };
    let query = match log_query(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e })),
    };
    match gateway.logs(&query) {
        Ok(lines) => json(StatusCode::OK, &serde_json::json!({ "lines": lines })),
        Err(e) => json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": e })),
    }
}

/// The query string of `/logs`, by hand: the listener is built without
/// axum's query-string feature, and three plain keys need no more.
fn log_query(query: &str) -> Result<mender_mcp::LogQuery, String> {
    let mut q = mender_mcp::LogQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("/logs: {key}={value} is not a whole number"))
        };
        match key {
            "server" => q.server = Some(value.to_owned()),
            "after_seq" => q.after_seq = number()?,
            "since_unix_ms" => q.since_unix_ms = number()?,
            other => {
                return Err(format!(
                    "/logs: unknown parameter `{other}` (server, after_seq, since_unix_ms)"
                ));
            }
        }
    }
    Ok(q)
}

/// The Prometheus text exposition of every family.
async fn render_metrics(State(admin): State<Arc<Admin>>) -> Response {
    match &admin.gateway {
        Some(gateway) => gateway.record_metrics(),
        None => {
            if let Some(rt) = page::demo_runtime() {
                rt.record_metrics();
            }
        }
    }
    admin.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_the_opt_in() {
        assert!(parse_addr("127.0.0.1:0", false).is_ok());
        assert!(parse_addr("[::1]:9464", false).is_ok());
        let err = parse_addr("0.0.0.0:9464", false).unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(err.contains("--admin-public"), "{err}");
        assert!(parse_addr("0.0.0.0:9464", true).is_ok());
        assert!(parse_addr("no-port", false).is_err());
    }

    #[test]
    fn log_queries_are_read_or_refused_by_name() {
        let q = log_query("server=raw&after_seq=7&since_unix_ms=100").unwrap();
        assert_eq!(q.server.as_deref(), Some("raw"));
        assert_eq!((q.after_seq, q.since_unix_ms), (7, 100));
        assert_eq!(log_query("").unwrap(), mender_mcp::LogQuery::default());
        let e = log_query("after_seq=x").unwrap_err();
        assert!(e.contains("after_seq=x"), "{e}");
        let e = log_query("lines=5").unwrap_err();
        assert!(e.contains("unknown parameter `lines`"), "{e}");
    }
}
