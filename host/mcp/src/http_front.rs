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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
    /// Names accepted in the `Host` header besides the loopback names
    /// (`localhost`, `127.0.0.1`, `::1`): DNS-rebinding protection.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`https://app.example.com:443`); a request
    /// with any other `Origin` is refused with 403. Requests without an
    /// `Origin` (not from a browser) pass.
    pub allowed_origins: Vec<String>,
    /// The largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
}

impl McpProxy {
    /// Serves MCP over Streamable HTTP at `/mcp` on `listener`, to any
    /// number of clients, until the process ends. The upstreams start on
    /// the first client's `initialize` (offered that client's roots,
    /// sampling and elicitation) and are shared by every client.
    pub async fn serve_http(
        self,
        listener: tokio::net::TcpListener,
        front: HttpFront,
    ) -> Result<(), ProxyError> {
        let gateway = self.gateway.clone();
        let sessions = Arc::new(AtomicU64::new(1));
        let mut config = StreamableHttpServerConfig::default().enforce_origin_validation();
        if !front.allowed_hosts.is_empty() {
            let loopback = ["localhost", "127.0.0.1", "::1"].map(String::from);
            config =
                config.with_allowed_hosts(loopback.into_iter().chain(front.allowed_hosts.clone()));
        }
        config.allowed_origins = front.allowed_origins.clone();
        if front.max_body_bytes > 0 {
            config.max_request_body_bytes = front.max_body_bytes;
        }
        let service = StreamableHttpService::new(
            move || Ok(gateway.for_session(sessions.fetch_add(1, Ordering::Relaxed))),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let tokens: Arc<[String]> = front.tokens.into();
        let app = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(tokens, authorize));
        axum::serve(listener, app)
            .await
            .map_err(|e| ProxyError::Client(format!("HTTP server: {e}")))
    }
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

/// Lets a request through when no tokens are configured or it carries one
/// of them; else 401 with a `WWW-Authenticate` challenge.
async fn authorize(State(tokens): State<Arc<[String]>>, request: Request, next: Next) -> Response {
    if tokens.is_empty() {
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
    let error = if presented.is_some() {
        "invalid_token"
    } else {
        "invalid_request"
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Body::from(format!("mender: a bearer token is required ({error})\n")),
    )
        .into_response();
    if let Ok(v) = format!("Bearer realm=\"mender\", error=\"{error}\"").parse() {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
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
