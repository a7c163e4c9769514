//! The gateway's health: a snapshot per upstream (state, restarts, circuit,
//! last error), served as JSON on a Unix socket for `mender status`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::upstream::{Upstream, UpstreamState};
use mender::Runtime;

/// The gauge the bundled circuit breaker sets on each transition
/// (0 closed, 1 half-open, 2 open).
pub const CIRCUIT_GAUGE: &str = "circuit_state";

/// The whole gateway.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GatewayStatus {
    /// The gateway's process id.
    pub pid: u32,
    /// Seconds since the gateway started.
    pub uptime_s: u64,
    /// Each upstream, in config order.
    pub upstreams: Vec<UpstreamStatus>,
}

/// One upstream server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UpstreamStatus {
    /// Its name in `[mcp.servers.*]`.
    pub name: String,
    /// `starting`, `ready`, `unresponsive` (a call and a ping after it went
    /// unanswered: hung), `restarting` or `down`.
    pub state: String,
    /// Seconds in that state.
    pub state_for_s: u64,
    /// Whether the gateway serves on without it.
    pub optional: bool,
    /// The server process, while it runs.
    pub pid: Option<u32>,
    /// How many times it exited, was killed as hung, or failed to start.
    pub restarts: u64,
    /// Tools it offers (as last listed).
    pub tools: usize,
    /// The last failure of the process (start, exit, hang).
    pub last_error: Option<String>,
    /// That failure's kind.
    pub last_error_kind: Option<String>,
    /// The last call that failed for good (after retries): what the
    /// client was told.
    #[serde(default)]
    pub last_call_error: Option<String>,
    /// That failure's kind (`timeout`, `rate-limited`, …).
    #[serde(default)]
    pub last_call_error_kind: Option<String>,
    /// The service's circuit, as its breaker last reported it (`None`
    /// without a breaker, or before its first transition: closed).
    pub circuit: Option<String>,
    /// Tool calls, resource reads and prompt gets forwarded.
    pub calls: u64,
    /// Of those, how many failed for good.
    pub failures: u64,
}

impl GatewayStatus {
    /// The required (not `optional`) upstreams that are not `ready`: the
    /// gateway is ready to serve its client when this is empty.
    pub fn not_ready(&self) -> Vec<&UpstreamStatus> {
        self.upstreams
            .iter()
            .filter(|u| !u.optional && u.state != "ready")
            .collect()
    }

    /// Sets the per-upstream families on the `metrics` facade from this
    /// snapshot (`mender_upstream_up`, `…_restarts_total`, `…_tools`;
    /// see docs/observability.md). Called right before a scrape, so the
    /// exported values are the status's own, never a second bookkeeping.
    pub fn record_metrics(&self) {
        for u in &self.upstreams {
            let up = if u.state == "ready" { 1.0 } else { 0.0 };
            metrics::gauge!("mender_upstream_up", "server" => u.name.clone()).set(up);
            metrics::counter!("mender_upstream_restarts_total", "server" => u.name.clone())
                .absolute(u.restarts);
            metrics::gauge!("mender_upstream_tools", "server" => u.name.clone())
                .set(u.tools as f64);
        }
    }
}

/// Takes the gateway's status from anywhere (the status socket, an HTTP
/// admin listener) while the gateway serves its client: it holds the
/// runtime and the upstreams, not the gateway.
#[derive(Clone)]
pub struct StatusHandle {
    pub(crate) rt: Runtime,
    pub(crate) upstreams: Arc<Vec<Arc<Upstream>>>,
    pub(crate) started: std::time::Instant,
}

impl StatusHandle {
    /// The gateway's health now: what `mender status --json` prints.
    pub fn snapshot(&self) -> GatewayStatus {
        snapshot(&self.rt, &self.upstreams, self.started)
    }

    /// The runtime the gateway calls through (its plugins, its recent
    /// calls and decisions).
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

fn snapshot(
    rt: &Runtime,
    upstreams: &[Arc<Upstream>],
    started: std::time::Instant,
) -> GatewayStatus {
    let gauges = rt.plugin_metrics().gauges();
    let upstreams = upstreams
        .iter()
        .map(|u| {
            let (state, since, restarts, last_error, last_call_error) = u.health(|h| {
                (
                    h.state,
                    h.since,
                    h.restarts,
                    h.last_error.clone(),
                    h.last_call_error.clone(),
                )
            });
            let circuit = gauges
                .iter()
                .find(|((_, service, name), _)| *service == u.spec.service && name == CIRCUIT_GAUGE)
                .map(|(_, v)| match *v as i64 {
                    0 => "closed",
                    1 => "half-open",
                    _ => "open",
                })
                .map(str::to_owned);
            UpstreamStatus {
                name: u.name().to_owned(),
                state: serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                state_for_s: since.elapsed().as_secs(),
                optional: u.spec.optional,
                pid: if matches!(state, UpstreamState::Ready | UpstreamState::Unresponsive) {
                    u.connection().and_then(|c| c.pid)
                } else {
                    None
                },
                restarts,
                tools: u.catalog().map_or(0, |c| c.tools.len()),
                last_error: last_error.as_ref().map(|e| e.0.clone()),
                last_error_kind: last_error.map(|e| e.1.to_owned()),
                last_call_error: last_call_error.as_ref().map(|e| e.0.clone()),
                last_call_error_kind: last_call_error.map(|e| e.1),
                circuit,
                calls: u.calls.load(Ordering::Relaxed),
                failures: u.failures.load(Ordering::Relaxed),
            }
        })
        .collect();
    GatewayStatus {
        pid: std::process::id(),
        uptime_s: started.elapsed().as_secs(),
        upstreams,
    }
}

/// Answers each connection on `path` with one JSON snapshot. A stale
/// socket file (a gateway that died) is replaced.
pub(crate) async fn serve(
    path: &Path,
    snapshot: impl Fn() -> GatewayStatus + Send + 'static,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() && UnixStream::connect(path).await.is_err() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = serde_json::to_vec(&snapshot()).unwrap_or_default();
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    });
    Ok(())
}

/// Asks the gateway listening on `path` for its status.
pub async fn fetch(path: &Path) -> Result<GatewayStatus, String> {
    let mut stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "no mender mcp-proxy is answering on {}: {e}",
            path.display()
        )
    })?;
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("reading status from {}: {e}", path.display()))?;
    serde_json::from_slice(&body).map_err(|e| format!("bad status from {}: {e}", path.display()))
}
