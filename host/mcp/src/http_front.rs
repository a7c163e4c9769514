//! The gateway as a Streamable HTTP endpoint at `/mcp`, for many clients
//! at once (`mender mcp-proxy --listen ADDR`).
//!
//! rmcp's server transport does the protocol: sessions (`Mcp-Session-Id`),
//! SSE streams for what the gateway sends unasked, `Host` checks against
//! DNS rebinding, `Origin` checks and the body limit. In front of it sit
//! the checks rmcp leaves to the application: bearer tokens (compared in
//! constant time; a missing or wrong one is a 401 with `WWW-Authenticate`),
//! and every session gets its own `Gateway` handle, so progress goes to
//! the client that asked for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::{McpProxy, ProxyError};

/// How the HTTP endpoint admits clients.
#[derive(Clone, Debug, Default)]
pub struct HttpFront {
    /// Bearer tokens a client must send (`Authorization: Bearer …`), any
    /// one of them. Empty: no authentication (refused by the CLI on a
    /// non-loopback address).
    pub tokens: Vec<String>,
    /// JWTs accepted as bearer tokens besides `tokens` (see `crate::jwt`).
    pub jwt: Option<Arc<crate::jwt::JwtAuth>>,
    /// Names accepted in the `Host` header besides the loopback names
    /// (`localhost`, `127.0.0.1`, `::1`): DNS-rebinding protection.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted besides loopback ones (`http://localhost:*`,
    /// `http://127.0.0.1:*`, `http://[::1]:*`, and https), e.g.
    /// `https://app.example.com:443`; a request with any other `Origin` is
    /// refused with 403. Requests without an `Origin` (not from a browser)
    /// pass.
    pub allowed_origins: Vec<String>,
    /// The largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Requests one client may have in flight (by its bearer token, else
    /// by its session); more are refused with 429 and `Retry-After: 1`,
    /// so one agent cannot take every upstream slot. 0: no limit.
    pub max_in_flight_per_client: usize,
    /// How long a session may stay idle before it ends (and its
    /// per-client servers stop); `None`: rmcp's default, 5 minutes.
    pub session_idle: Option<std::time::Duration>,
}

/// Browser origins on this machine, any port.
const LOOPBACK_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

impl McpProxy {
    /// Serves MCP over Streamable HTTP at `/mcp` on `listener`, to any
    /// number of clients, until SIGTERM or SIGINT, then stops every
    /// upstream process (see `upstream/supervisor.rs`). The shared
    /// upstreams start on the first client's `initialize` (offered that
    /// client's roots, sampling and elicitation); a `share = "per-client"`
    /// server gets a process per client session (see `per_client`).
    pub async fn serve_http(
        self,
        listener: tokio::net::TcpListener,
        front: HttpFront,
    ) -> Result<(), ProxyError> {
        self.gateway.per_client.activate();
        let gateway = self.gateway.clone();
        let sessions = Arc::new(AtomicU64::new(1));
        let mut config = StreamableHttpServerConfig::default().enforce_origin_validation();
        if !front.allowed_hosts.is_empty() {
            let loopback = ["localhost", "127.0.0.1", "::1"].map(String::from);
            config =
                config.with_allowed_hosts(loopback.into_iter().chain(front.allowed_hosts.clone()));
        }
        // A page on this machine (a local inspector, the gateway's own
        // address) is no rebinding attack: a rebound page carries the
        // attacker's origin. Loopback origins pass; others must be listed.
        config.allowed_origins = LOOPBACK_ORIGINS
            .iter()
            .map(|o| o.to_string())
            .chain(front.allowed_origins.iter().cloned())
            .collect();
        if front.max_body_bytes > 0 {
            config.max_request_body_bytes = front.max_body_bytes;
        }
        let originals = {
            let (tools, tasks) = (gateway.clone(), gateway.clone());
            crate::raw_tools_http::Originals {
                tools: Arc::new(move |name| tools.raw_tool(name)),
                tasks: Arc::new(move || tasks.tasks_capability()),
                max_body: config.max_request_body_bytes,
            }
        };
        let service = StreamableHttpService::new(
            move || Ok(gateway.for_session(sessions.fetch_add(1, Ordering::Relaxed))),
            Arc::new(sessions_idle_after(front.session_idle)),
            config,
        );
        let admission = Arc::new(Admission {
            tokens: front.tokens,
            jwt: front.jwt,
        });
        let in_flight = Arc::new(InFlight {
            limit: front.max_in_flight_per_client,
            per_client: Mutex::default(),
        });
        // Layers run outside in: the token is checked before a slot is
        // taken, so a client without one cannot fill anybody's slots.
        let app = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(
                originals,
                crate::raw_tools_http::restore_raw_tools,
            ))
            .layer(axum::middleware::from_fn_with_state(in_flight, limit))
            .layer(axum::middleware::from_fn_with_state(admission, authorize));
        // Without TCP_NODELAY an SSE answer (headers, then the event, then
        // the stream's end: small writes one after another) waits on
        // Nagle's algorithm for the client's delayed ACK: measured, 40 ms
        // on every call over loopback.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set on a client connection: {e}");
            }
        });
        let served = tokio::select! {
            served = axum::serve(listener, app) => {
                served.map_err(|e| ProxyError::Client(format!("HTTP server: {e}")))
            }
            signal = shutdown_signal() => {
                tracing::info!("{signal}: stopping the MCP servers");
                Ok(())
            }
        };
        self.gateway.stop_all().await;
        if let Some(path) = &self.status_socket {
            let _ = std::fs::remove_file(path);
        }
        served
    }
}

/// The first SIGTERM or SIGINT, by name; never, where they cannot be
/// watched (the gateway then ends as it always did: killed).
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// rmcp's session manager, with sessions ending after `idle` (if given).
fn sessions_idle_after(idle: Option<std::time::Duration>) -> LocalSessionManager {
    let mut manager = LocalSessionManager::default();
    if let Some(idle) = idle {
        manager.session_config.keep_alive = Some(idle);
    }
    manager
}

/// The address `--listen` means: refuses a non-loopback address without
/// tokens, since anyone who can reach it could use every upstream.
pub fn check_listen_address(addr: SocketAddr, has_tokens: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || has_tokens {
        Ok(())
    } else {
        Err(format!(
            "--listen {addr} is reachable from other machines: give bearer tokens \
             (--token-file or MENDER_TOKENS) so only your agents can use it, or listen on 127.0.0.1"
        ))
    }
}

/// Who may call: static tokens and, optionally, JWTs.
struct Admission {
    tokens: Vec<String>,
    jwt: Option<Arc<crate::jwt::JwtAuth>>,
}

/// Lets a request through when no tokens are configured or it carries one
/// of them (or a valid JWT); else 401 with a `WWW-Authenticate` challenge.
async fn authorize(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    let tokens = &admission.tokens;
    if tokens.is_empty() && admission.jwt.is_none() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let known = presented.is_some_and(|p| {
        // Every token is compared, each in constant time, so the answer's
        // timing tells nothing about which one nearly matched.
        tokens
            .iter()
            .fold(false, |any, t| any | same(t.as_bytes(), p.as_bytes()))
    });
    if known {
        return next.run(request).await;
    }
    let mut why = None;
    if let (Some(jwt), Some(token)) = (&admission.jwt, presented) {
        match jwt.check(token).await {
            Ok(()) => return next.run(request).await,
            Err(e) => why = Some(e),
        }
    }
    let error = if presented.is_some() {
        "invalid_token"
    } else {
        "invalid_request"
    };
    // The reason names what failed (expired, audience…), never the token;
    // quotes and backslashes would end the header's quoted string.
    let description = why
        .map(|w| w.replace(['"', '\\'], "'"))
        .map_or_else(String::new, |w| format!(", error_description=\"{w}\""));
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Body::from(format!("mender: a bearer token is required ({error})\n")),
    )
        .into_response();
    if let Ok(v) = format!("Bearer realm=\"mender\", error=\"{error}\"{description}").parse() {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Requests in flight per client.
struct InFlight {
    limit: usize,
    per_client: Mutex<HashMap<String, usize>>,
}

/// One request's slot, given back when its answer (an SSE stream
/// included) has been sent or abandoned.
struct Slot {
    in_flight: Arc<InFlight>,
    client: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Holds a request's slot until its response body ends: a tool call
/// answered over SSE is still running after the headers are sent.
struct SlotBody {
    inner: Body,
    _slot: Slot,
}

impl HttpBody for SlotBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a client's POSTs (what carries calls; the long-lived GET stream
/// is not a call) and refuses those over the limit with 429.
async fn limit(State(in_flight): State<Arc<InFlight>>, request: Request, next: Next) -> Response {
    if in_flight.limit == 0 || request.method() != Method::POST {
        return next.run(request).await;
    }
    // The token names the agent; without tokens, the session does (a
    // client's first POST, `initialize`, has none yet and shares a slot
    // pool with the other first POSTs).
    let client = client_key(request.headers());
    {
        let mut counts = in_flight
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(client.clone()).or_default();
        if *n >= in_flight.limit {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Body::from(format!(
                    "mender: this client already has {} requests in flight\n",
                    in_flight.limit
                )),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return response;
        }
        *n += 1;
    }
    let slot = Slot {
        in_flight: in_flight.clone(),
        client,
    };
    let (parts, body) = next.run(request).await.into_parts();
    Response::from_parts(
        parts,
        Body::new(SlotBody {
            inner: body,
            _slot: slot,
        }),
    )
}

/// Who a request is from: the token names the agent; without tokens, the
/// session does (a client's first POST, `initialize`, has none yet and
/// shares one pool with the other first POSTs).
fn client_key(headers: &axum::http::HeaderMap) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get(header::AUTHORIZATION.as_str())
        .map(|t| format!("token:{t}"))
        .or_else(|| get("mcp-session-id").map(|s| format!("session:{s}")))
        .unwrap_or_default()
}

/// Byte equality in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_addresses() {
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
        assert!(check_listen_address("127.0.0.1:1".parse().unwrap(), false).is_ok());
        assert!(check_listen_address("[::1]:1".parse().unwrap(), false).is_ok());
        let e = check_listen_address("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(e.contains("bearer tokens"), "{e}");
        assert!(check_listen_address("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
