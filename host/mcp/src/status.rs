//! The gateway's health: a snapshot per upstream (state, restarts, circuit,
//! last error), served as JSON on a Unix socket for `mender status`; and
//! the upstreams' kept stderr for `mender logs`, on the same socket.
//!
//! The protocol: the client writes one request line and closes its side;
//! the gateway answers with one JSON document and closes. `status` (or
//! nothing) asks for the [`GatewayStatus`]; `logs {LogQuery as JSON}` for
//! `{"lines": [LogLine…]}` or `{"error": "…"}`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::stderr_log::{LogLine, LogQuery};
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
    /// Of those, how many are in the pipeline now (waiting, retrying).
    #[serde(default)]
    pub in_flight: u64,
    /// The MCP version spoken with it (`2025-11-25`, `2026-07-28`, …),
    /// while connected.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `per-client` when each HTTP client session gets its own process
    /// (`share = "per-client"` on the HTTP front; `state` is then
    /// `per-client`, and the processes are in `clients`), else `shared`.
    #[serde(default)]
    pub share: String,
    /// Its per-client processes, oldest session first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientProcess>,
    /// Its processes when it runs several (`replicas`), in replica order;
    /// `state` is then the best of theirs (`ready` while one is), `pid`
    /// none, and `restarts` their sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaProcess>,
}

/// One replica of a server with `replicas`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReplicaProcess {
    /// Its number, from 1.
    pub replica: usize,
    /// As `UpstreamStatus::state`.
    pub state: String,
    /// The process, while it runs.
    pub pid: Option<u32>,
    /// How many times it exited, was killed as hung, or failed to start.
    pub restarts: u64,
    /// Attempts of the server's calls sent to it (a retry on another
    /// replica counts there).
    pub calls: u64,
    /// Whether it is passed over now after a failed attempt (`eject-for`).
    pub ejected: bool,
}

/// One per-client process of a server. Sessions are numbered by the
/// gateway in the order they arrived (the `Mcp-Session-Id` a client holds
/// is a credential of sorts, so it is not shown).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClientProcess {
    /// The gateway's number for the client session it serves.
    pub session: u64,
    /// As `UpstreamStatus::state`.
    pub state: String,
    /// The process, while it runs.
    pub pid: Option<u32>,
    /// How many times it exited, was killed as hung, or failed to start.
    pub restarts: u64,
    /// Calls forwarded to it.
    pub calls: u64,
    /// Of those, how many failed for good.
    pub failures: u64,
}

/// Describes the per-upstream families to the installed recorder
/// (`# HELP`); call it once, after installing the recorder.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "mender_upstream_up",
        "1 while the MCP server is ready, else 0 (starting, unresponsive, restarting, down)"
    );
    metrics::describe_counter!(
        "mender_upstream_restarts_total",
        "Times the MCP server exited, was killed as hung, or failed to start"
    );
    metrics::describe_gauge!(
        "mender_upstream_tools",
        "Tools the MCP server offers, as last listed"
    );
    metrics::describe_gauge!(
        "mender_upstream_in_flight",
        "Calls to the MCP server in the pipeline now (attempting, waiting to retry)"
    );
}

impl GatewayStatus {
    /// The required (not `optional`) upstreams that are not `ready`: the
    /// gateway is ready to serve its client when this is empty.
    pub fn not_ready(&self) -> Vec<&UpstreamStatus> {
        self.upstreams
            .iter()
            .filter(|u| !u.optional && u.share != "per-client" && u.state != "ready")
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
            metrics::gauge!("mender_upstream_in_flight", "server" => u.name.clone())
                .set(u.in_flight as f64);
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
    pub(crate) per_client: Arc<crate::per_client::PerClient>,
    pub(crate) started: std::time::Instant,
}

impl StatusHandle {
    /// Sets the gateway's scrape-time families: the upstreams' (from a
    /// fresh snapshot) and the runtime's ([`Runtime::record_metrics`]).
    pub fn record_metrics(&self) {
        self.snapshot().record_metrics();
        self.rt.record_metrics();
    }

    /// The gateway's health now: what `mender status --json` prints.
    pub fn snapshot(&self) -> GatewayStatus {
        let mut status = snapshot(&self.rt, &self.upstreams, self.started);
        for (u, s) in self.upstreams.iter().zip(&mut status.upstreams) {
            if self.per_client.applies_to(u) {
                per_client(s, &self.per_client.processes_of(u.name()));
            }
            if !u.replicas.is_empty() {
                replicas(s, &u.replica_set());
            }
        }
        status
    }

    /// The stderr lines kept of the servers `query` names (all when it
    /// names none), oldest first. An unknown server is an error that lists
    /// the known ones.
    pub fn logs(&self, query: &LogQuery) -> Result<Vec<LogLine>, String> {
        if let Some(name) = &query.server
            && !self.upstreams.iter().any(|u| u.name() == name)
        {
            let known: Vec<&str> = self.upstreams.iter().map(|u| u.name()).collect();
            return Err(format!(
                "no server `{name}` in this gateway (its servers: {})",
                known.join(", ")
            ));
        }
        let mut lines: Vec<LogLine> = self
            .upstreams
            .iter()
            .filter(|u| query.server.as_deref().is_none_or(|n| n == u.name()))
            .flat_map(|u| u.stderr.read(query.after_seq, query.since_unix_ms))
            .collect();
        lines.sort_by_key(|l| l.seq);
        Ok(lines)
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
                state: state_name(state),
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
                in_flight: u.in_flight.load(Ordering::Relaxed),
                protocol: u
                    .connection()
                    .map(|c| c.info.protocol_version.as_str().to_owned()),
                share: "shared".to_owned(),
                clients: Vec::new(),
                replicas: Vec::new(),
            }
        })
        .collect();
    GatewayStatus {
        pid: std::process::id(),
        uptime_s: started.elapsed().as_secs(),
        upstreams,
    }
}

/// A per-client server's entry: its processes, and their calls summed.
fn per_client(status: &mut UpstreamStatus, processes: &[Arc<Upstream>]) {
    status.share = "per-client".to_owned();
    status.state = "per-client".to_owned();
    status.clients = processes
        .iter()
        .map(|p| {
            let (state, restarts) = p.health(|h| (h.state, h.restarts));
            let running = matches!(state, UpstreamState::Ready | UpstreamState::Unresponsive);
            ClientProcess {
                session: p.session.unwrap_or_default(),
                state: state_name(state),
                pid: running
                    .then(|| p.connection().and_then(|c| c.pid))
                    .flatten(),
                restarts,
                calls: p.calls.load(Ordering::Relaxed),
                failures: p.failures.load(Ordering::Relaxed),
            }
        })
        .collect();
    status.calls = status.clients.iter().map(|c| c.calls).sum();
    status.failures = status.clients.iter().map(|c| c.failures).sum();
    status.restarts = status.clients.iter().map(|c| c.restarts).sum();
    if let Some(catalog) = processes.iter().find_map(|p| p.catalog()) {
        status.tools = catalog.tools.len();
    }
}

/// A replicated server's entry: its processes, the best state of theirs
/// (the server serves while one replica does), their restarts summed, the
/// first one's last error.
fn replicas(status: &mut UpstreamStatus, processes: &[Arc<Upstream>]) {
    let rank = |s: UpstreamState| match s {
        UpstreamState::Ready => 0,
        UpstreamState::Unresponsive => 1,
        UpstreamState::Starting => 2,
        UpstreamState::Restarting => 3,
        UpstreamState::Down => 4,
        UpstreamState::Stopped => 5,
    };
    let now = std::time::Instant::now();
    let mut best = None;
    status.replicas = processes
        .iter()
        .map(|p| {
            let (state, restarts) = p.health(|h| (h.state, h.restarts));
            if best.is_none_or(|b| rank(state) < rank(b)) {
                best = Some(state);
            }
            let running = matches!(state, UpstreamState::Ready | UpstreamState::Unresponsive);
            let ejected = p
                .ejected_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|until| now < until);
            ReplicaProcess {
                replica: p.replica,
                state: state_name(state),
                pid: running
                    .then(|| p.connection().and_then(|c| c.pid))
                    .flatten(),
                restarts,
                calls: p.attempts.load(Ordering::Relaxed),
                ejected,
            }
        })
        .collect();
    if let Some(best) = best {
        status.state = state_name(best);
    }
    status.pid = None;
    status.restarts = status.replicas.iter().map(|r| r.restarts).sum();
    // Replica 1 is the server's entry; the trouble of any replica is the
    // server's, named by its number.
    let trouble = processes
        .iter()
        .find_map(|p| p.health(|h| h.last_error.clone()).map(|e| (p.replica, e)));
    status.last_error = trouble
        .as_ref()
        .map(|(n, (e, _))| format!("replica {n}: {e}"));
    status.last_error_kind = trouble.map(|(_, (_, kind))| kind.to_owned());
    if let Some(catalog) = processes.iter().find_map(|p| p.lister().catalog()) {
        status.tools = catalog.tools.len();
    }
    if let Some(conn) = processes[0].lister().connection() {
        status.protocol = Some(conn.info.protocol_version.as_str().to_owned());
    }
}

fn state_name(state: UpstreamState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// How long a client has to send its request line: a `mender status`
/// from before the request existed sends none, and is answered the status
/// after this.
const REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Longer requests are not ours.
const MAX_REQUEST: u64 = 64 * 1024;

/// Answers each connection on `path` with one JSON document. A stale
/// socket file (a gateway that died) is replaced.
pub(crate) async fn serve(path: &Path, handle: StatusHandle) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() && UnixStream::connect(path).await.is_err() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(answer(stream, handle));
        }
    });
    Ok(())
}

async fn answer(mut stream: UnixStream, handle: StatusHandle) {
    let mut request = Vec::new();
    {
        let mut limited = (&mut stream).take(MAX_REQUEST);
        let _ = tokio::time::timeout(REQUEST_WAIT, limited.read_to_end(&mut request)).await;
    }
    let request = String::from_utf8_lossy(&request);
    let request = request.trim();
    let body = match request.split_once(' ').unwrap_or((request, "")) {
        ("" | "status", _) => serde_json::to_vec(&handle.snapshot()),
        ("logs", query) => {
            let answer = serde_json::from_str::<LogQuery>(query)
                .map_err(|e| format!("bad logs request: {e}"))
                .and_then(|q| handle.logs(&q));
            serde_json::to_vec(&match answer {
                Ok(lines) => serde_json::json!({ "lines": lines }),
                Err(error) => serde_json::json!({ "error": error }),
            })
        }
        (other, _) => serde_json::to_vec(&serde_json::json!({
            "error": format!(
                "unknown request `{}`: ask `status` or `logs`",
                other.chars().take(40).collect::<String>()
            )
        })),
    };
    let _ = stream.write_all(&body.unwrap_or_default()).await;
    let _ = stream.shutdown().await;
}

/// One request to the gateway listening on `path`: its JSON answer.
async fn ask(path: &Path, request: &str) -> Result<Vec<u8>, String> {
    let mut stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "no mender mcp-proxy is answering on {}: {e}",
            path.display()
        )
    })?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .await
        .and(stream.shutdown().await)
        .map_err(|e| format!("asking {}: {e}", path.display()))?;
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("reading from {}: {e}", path.display()))?;
    Ok(body)
}

/// Asks the gateway listening on `path` for its status.
pub async fn fetch(path: &Path) -> Result<GatewayStatus, String> {
    let body = ask(path, "status").await?;
    serde_json::from_slice(&body).map_err(|e| format!("bad status from {}: {e}", path.display()))
}

/// Asks the gateway listening on `path` for its servers' kept stderr.
pub async fn fetch_logs(path: &Path, query: &LogQuery) -> Result<Vec<LogLine>, String> {
    let request = format!("logs {}", serde_json::to_string(query).unwrap_or_default());
    let body = ask(path, &request).await?;
    #[derive(Deserialize)]
    struct Answer {
        lines: Option<Vec<LogLine>>,
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|e| format!("bad logs answer from {}: {e}", path.display()))?;
    match (answer.lines, answer.error) {
        (_, Some(error)) => Err(error),
        (Some(lines), None) => Ok(lines),
        (None, None) => Err(format!(
            "no lines in the answer from {} (an older gateway?)",
            path.display()
        )),
    }
}
