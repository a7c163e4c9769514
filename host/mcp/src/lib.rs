//! A resilient MCP gateway: one MCP server (over stdio, to any MCP client)
//! in front of upstream MCP servers run as supervised child processes.
//!
//! Each upstream is restarted with backoff when it exits or hangs; every
//! `tools/call`, `resources/read` and `prompts/get` goes through the
//! [`Runtime`] pipeline of the upstream's service, so the strategy plugins
//! decide retries, fallbacks and circuit breaking, with failures classified
//! from JSON-RPC codes, `isError` results (HTTP statuses and rate-limit
//! hints in their text), timeouts and closed connections. Tools are retried
//! only when the server annotates them read-only or idempotent, or the
//! config vouches for them. See [`McpConfig`] for `[mcp]` in `mender.toml`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mender::Runtime;
//! use mender_mcp::{McpConfig, McpProxy};
//! let path = std::path::Path::new("mender.toml");
//! let rt = Runtime::builder().config_file(path)?.build()?;
//! let proxy = McpProxy::start(rt, McpConfig::from_file(path)?).await?;
//! proxy.serve_stdio().await?;
//! # Ok(()) }
//! ```

mod classify;
mod client;
mod collisions;
mod config;
mod failover;
mod forward;
mod framing;
mod gateway;
mod http_front;
pub mod jwt;
mod lifecycle;
mod oauth;
mod per_client;
mod progress;
mod raw_tools;
mod raw_tools_http;
mod scrub;
mod status;
mod stderr_log;
mod stdio;
mod tasks;
mod trace;
mod upstream;

use std::sync::Arc;
use std::time::Instant;

use rmcp::ServiceExt as _;

pub use classify::{UpstreamError, classify_tool_text, rpc_kind, tool_text};
pub use config::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PROCESSES, Grant, HttpEndpoint, MAX_REPLICAS, McpConfig,
    OAuthSettings, RedactResults, ServerSpec, Share, UpstreamProtocol, default_status_socket,
    status_socket_of,
};
pub use forward::{CALL_META_KEY, tool_is_idempotent};
pub use http_front::{HttpFront, check_listen_address};
pub use oauth::{SecretSink, login};
pub use status::{
    CIRCUIT_GAUGE, ClientProcess, GatewayStatus, ReplicaProcess, StatusHandle, UpstreamStatus,
    describe_metrics, fetch as fetch_status, fetch_logs,
};
pub use stderr_log::{DEFAULT_LOG_LINES, LogLine, LogQuery, error_codes};
pub use trace::{SpanContext, TraceParent, set_span_context};
pub use upstream::UpstreamState;

use client::Hub;
use gateway::Gateway;
use mender::Runtime;
use upstream::Upstream;

/// Why the gateway could not start or serve.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProxyError {
    /// A server not marked `optional` failed its first start.
    #[error("required MCP server `{server}` ({location}) failed to start: {error}")]
    RequiredServer {
        /// The server's name.
        server: String,
        /// Where it is configured (`file:line`).
        location: String,
        /// Why it failed.
        error: String,
    },
    /// The client connection failed.
    #[error("MCP client connection: {0}")]
    Client(String),
}

/// Starts every upstream's supervisor and waits for each one's first start;
/// a required server that fails it fails the whole launch (an optional one
/// is left to recover on its own).
async fn launch(upstreams: &[Arc<Upstream>]) -> Result<(), ProxyError> {
    for up in upstreams {
        up.spawn_supervisor();
    }
    let mut waits = tokio::task::JoinSet::new();
    for up in upstreams {
        let up = up.clone();
        waits.spawn(async move { (up.first_start().await, up) });
    }
    while let Some(joined) = waits.join_next().await {
        let Ok((outcome, up)) = joined else { continue };
        match outcome {
            Ok(()) => {}
            Err(error) if up.spec.optional => {
                tracing::warn!(server = %up.name(), "optional MCP server is down, serving without it: {error}");
            }
            Err(error) => {
                return Err(ProxyError::RequiredServer {
                    server: up.name().to_owned(),
                    location: up.spec.location.clone(),
                    error,
                });
            }
        }
    }
    Ok(())
}

/// A started gateway: status served, ready for a client (whose
/// `initialize` starts the upstreams).
pub struct McpProxy {
    gateway: Gateway,
    started: Instant,
    /// The status socket this gateway bound (removed when it stops).
    status_socket: Option<std::path::PathBuf>,
    max_message_bytes: usize,
}

impl McpProxy {
    /// Prepares every upstream and serves status. The servers themselves
    /// start when the client sends `initialize`, so each is spawned once,
    /// already offered the client's roots, sampling and elicitation (a
    /// restart to show them later would cut off calls in flight). Must run
    /// inside a tokio runtime.
    pub async fn start(rt: Runtime, config: McpConfig) -> Result<McpProxy, ProxyError> {
        let hub = Arc::new(Hub::default());
        let upstreams: Vec<Arc<Upstream>> = config
            .servers
            .iter()
            .map(|s| Upstream::new(s.clone(), hub.clone(), rt.clone(), config.log_lines))
            .collect();
        let mut proxy = McpProxy {
            gateway: Gateway {
                rt,
                upstreams: Arc::new(upstreams),
                hub,
                warned: Arc::default(),
                launched: Arc::default(),
                session: 0,
                stateless_clients: config.stateless_clients,
                per_client: Arc::default(),
                own: None,
            },
            started: Instant::now(),
            status_socket: None,
            max_message_bytes: config.max_message_bytes,
        };
        let handle = proxy.status_handle();
        // Status is a convenience: a second gateway on the same config (two
        // MCP clients each start one) still serves its client without it.
        let socket = &config.status_socket;
        match status::serve(socket, handle).await {
            Ok(()) => proxy.status_socket = Some(socket.clone()),
            Err(e) => tracing::warn!(
                "no status for `mender status` at {}: {e} (another gateway on this config has it)",
                socket.display()
            ),
        }
        Ok(proxy)
    }

    /// The gateway's health now.
    pub fn status(&self) -> GatewayStatus {
        self.status_handle().snapshot()
    }

    /// A handle that takes the status snapshot after the gateway has been
    /// handed to [`McpProxy::serve_stdio`] (an HTTP admin listener holds
    /// one).
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            rt: self.gateway.rt.clone(),
            upstreams: self.gateway.upstreams.clone(),
            per_client: self.gateway.per_client.clone(),
            started: self.started,
        }
    }

    /// Serves one MCP client on stdin/stdout until it disconnects.
    pub async fn serve_stdio(self) -> Result<(), ProxyError> {
        let (stdin, stdout) = stdio::streams();
        self.serve_io(stdin, stdout).await
    }

    /// Serves one MCP client speaking newline-delimited JSON-RPC on a byte
    /// stream pair (stdio, a Unix socket, a pipe) until it disconnects.
    /// Tool definitions reach it exactly as the upstreams sent them.
    pub async fn serve_io<R, W>(self, reader: R, writer: W) -> Result<(), ProxyError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let gateway = self.gateway.clone();
        let lookup: raw_tools::RawLookup = Arc::new(move |name| gateway.raw_tool(name));
        let gateway = self.gateway.clone();
        let tasks: raw_tools::TasksLookup = Arc::new(move || gateway.tasks_capability());
        let writer = raw_tools::RewriteWriter::new(writer, lookup, tasks);
        // rmcp reads the checked lines and writes into a pipe the output
        // task drains, so answers to bad lines go out between its own.
        let (rmcp_in, checked) = tokio::io::duplex(64 * 1024);
        let (rmcp_out, to_client) = tokio::io::duplex(64 * 1024);
        let (answers, answered) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(framing::check_input(
            reader,
            checked,
            answers,
            self.max_message_bytes,
        ));
        let output = tokio::spawn(framing::write_output(to_client, writer, answered));
        // The checker bounds every line already.
        let transport = rmcp::transport::async_rw::AsyncRwTransport::new_server(rmcp_in, rmcp_out)
            .with_max_line_length(usize::MAX);
        let served = self.serve(transport).await;
        // Whatever rmcp wrote last still reaches the client.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), output).await;
        served
    }

    /// Serves one MCP client on `transport` (anything rmcp accepts as a
    /// server transport) until it disconnects. Tool definitions pass
    /// through rmcp's typed model here, which drops fields it does not
    /// know; [`McpProxy::serve_io`] keeps them.
    pub async fn serve<T, E, A>(self, transport: T) -> Result<(), ProxyError>
    where
        T: rmcp::transport::IntoTransport<rmcp::RoleServer, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let socket = self.status_socket.clone();
        let launched = self.gateway.launched.clone();
        let served = match self.gateway.serve(transport).await {
            Ok(running) => running
                .waiting()
                .await
                .map(drop)
                .map_err(|e| ProxyError::Client(e.to_string())),
            Err(e) => Err(ProxyError::Client(e.to_string())),
        };
        // A required server that failed its first start is why the session
        // ended: say that rather than "initialize failed".
        let served = match launched.get() {
            Some(Err(e)) => Err(e.clone()),
            _ => served,
        };
        // The socket would name a gateway that is gone.
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        served
    }
}
