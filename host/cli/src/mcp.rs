//! `mender mcp-proxy` (the resilient MCP gateway on stdio) and `mender
//! status` (its health, from another terminal).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mender::{Redactor, ReloadResult, Runtime};
use mender_mcp::{GatewayStatus, McpConfig, McpProxy};

use crate::AdminArgs;
use crate::admin;
use crate::logging::{self, Logging};

/// `mender mcp-proxy`'s HTTP front door.
#[derive(clap::Args)]
pub struct HttpArgs {
    /// Serve MCP over Streamable HTTP at http://ADDR/mcp, to many clients,
    /// instead of one client on stdio. A non-loopback address needs tokens.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Bearer tokens HTTP clients must send, one per line (also
    /// `MENDER_TOKENS`, comma-separated). Redacted from every log line.
    #[arg(long, requires = "listen")]
    token_file: Option<PathBuf>,
    /// Also accept JWTs as bearer tokens: signed by a key of this JWKS (a
    /// file, or an http(s) URL fetched at start and on key rotation).
    #[arg(long, value_name = "FILE|URL", requires_all = ["listen", "jwt_issuer", "jwt_audience"])]
    jwt_jwks: Option<String>,
    /// The issuer (`iss`) a JWT must name.
    #[arg(long, value_name = "ISS", requires = "jwt_jwks")]
    jwt_issuer: Option<String>,
    /// The audience (`aud`) a JWT must name.
    #[arg(long, value_name = "AUD", requires = "jwt_jwks")]
    jwt_audience: Option<String>,
    /// A browser origin allowed to call, e.g. `https://app.example.com:443`
    /// (repeatable; by default requests with an `Origin` header are refused).
    #[arg(long = "allow-origin", requires = "listen")]
    allow_origins: Vec<String>,
    /// A `Host` name accepted besides the loopback names (repeatable): the
    /// name clients use to reach a non-loopback `--listen`.
    #[arg(long = "allow-host", requires = "listen")]
    allow_hosts: Vec<String>,
    /// Requests one client (one token, else one session) may have in
    /// flight; more get 429 with `Retry-After: 1` (0: no limit).
    #[arg(long, default_value_t = 32, requires = "listen")]
    max_in_flight_per_client: usize,
    /// How long a client session may stay idle (no request, no stream
    /// event) before it ends, with its per-client servers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m", requires = "listen")]
    session_idle: std::time::Duration,
}

impl HttpArgs {
    /// The tokens from `--token-file` and `MENDER_TOKENS`.
    fn tokens(&self) -> Result<Vec<String>, String> {
        let mut tokens: Vec<String> = std::env::var("MENDER_TOKENS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(path) = &self.token_file {
            let text = mender::file::read_text(path, "a token file (one token per line)")
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.starts_with('#'))
                    .map(str::to_owned),
            );
            if tokens.is_empty() {
                return Err(format!("--token-file {} has no tokens", path.display()));
            }
        }
        Ok(tokens)
    }
}

/// `mender mcp-proxy --config F`: stdout is the MCP channel, so every log
/// line goes to stderr (where MCP clients collect a server's logs).
pub fn proxy(config: &Path, http: HttpArgs, admin_args: &AdminArgs, log: &Logging) -> ExitCode {
    let tokens = match http.tokens() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mender mcp-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = http.listen
        && let Err(e) =
            mender_mcp::check_listen_address(addr, !tokens.is_empty() || http.jwt_jwks.is_some())
    {
        eprintln!("mender mcp-proxy: {e}");
        return ExitCode::from(2);
    }
    // Refused before anything starts: a typo'd or public address is the
    // operator's to fix, not something to serve without.
    let admin_addr = match admin_args
        .admin
        .as_deref()
        .map(|a| admin::parse_addr(a, admin_args.admin_public))
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mender mcp-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let mcp = match McpConfig::from_file(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mender mcp-proxy: config error: {e}");
            return ExitCode::from(2);
        }
    };
    // Credentials handed to the servers are redacted wherever they echo
    // them (stderr, error text, status), and so is every log line of every
    // crate: rmcp logs whole JSON-RPC messages at trace.
    let mut secrets = secrets_of(&mcp);
    secrets.extend(tokens.iter().cloned());
    let redactor = redactor_for(&secrets);
    // rmcp logs every message at info, and a peer's refusal (e.g. a client
    // without roots) at warn; its errors are what matter here.
    let _telemetry = logging::init(log, "info,rmcp=error", redactor.clone());
    if mcp.servers.is_empty() {
        eprintln!(
            "mender mcp-proxy: {} has no [mcp.servers.*]: nothing to put the gateway in front of",
            config.display()
        );
        return ExitCode::from(2);
    }
    let tokio = match gateway_runtime() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mender mcp-proxy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio.block_on(async {
        tokio::spawn(timer_floor());
        // One redactor for the logs and the runtime (it already holds
        // `secrets`), so a token fetched while running is redacted in both.
        let built = Runtime::builder()
            .config_file(config)
            .and_then(|b| b.redactor(redactor).build());
        let rt = match built {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("mender mcp-proxy: {e}");
                return ExitCode::from(2);
            }
        };
        // Plugins and pipelines reload when the config or a plugin changes;
        // a broken edit is refused and the previous version keeps serving.
        let _watcher = rt
            .watch(|result: ReloadResult| match result {
                Ok(report) => tracing::info!("reloaded: {report:?}"),
                Err(e) => tracing::warn!("reload refused, previous config still serving: {e}"),
            })
            .map_err(|e| tracing::warn!("not watching the config for changes: {e}"))
            .ok();
        // Bound before the gateway starts, so a taken port fails the launch
        // instead of leaving a gateway nobody can scrape.
        let admin = match admin_addr {
            Some(addr) => match bind_admin(addr).await {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("mender mcp-proxy: {e}");
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let socket = mcp.status_socket.clone();
        let max_body = mcp.max_message_bytes;
        let proxy = match McpProxy::start(rt, mcp).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mender mcp-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some((listener, handle)) = admin {
            let status = proxy.status_handle();
            tokio::spawn(async move {
                if let Err(e) = admin::serve(listener, handle, Some(status)).await {
                    tracing::error!("admin listener stopped: {e}");
                }
            });
        }
        tracing::info!(status = %socket.display(), "gateway ready; `mender status --config {}` shows its health", config.display());
        let served = match http.listen {
            Some(addr) => {
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("mender mcp-proxy: --listen {addr}: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let jwt = match (http.jwt_jwks, http.jwt_issuer, http.jwt_audience) {
                    (Some(jwks), Some(issuer), Some(audience)) => {
                        let source = mender_mcp::jwt::JwksSource::parse(&jwks);
                        match mender_mcp::jwt::JwtAuth::load(source, issuer, audience).await {
                            Ok(jwt) => Some(std::sync::Arc::new(jwt)),
                            Err(e) => {
                                eprintln!("mender mcp-proxy: {e}");
                                return ExitCode::from(2);
                            }
                        }
                    }
                    _ => None,
                };
                let bound = listener.local_addr().unwrap_or(addr);
                tracing::info!(url = %format!("http://{bound}/mcp"), bearer_required = !tokens.is_empty() || jwt.is_some(), jwt = ?jwt, "serving MCP over Streamable HTTP");
                let front = mender_mcp::HttpFront {
                    tokens,
                    jwt,
                    allowed_hosts: http.allow_hosts,
                    allowed_origins: http.allow_origins,
                    max_body_bytes: max_body,
                    max_in_flight_per_client: http.max_in_flight_per_client,
                    session_idle: Some(http.session_idle),
                };
                proxy.serve_http(listener, front).await
            }
            None => proxy.serve_stdio().await,
        };
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mender mcp-proxy: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The gateway's async runtime: one thread, unless `MENDER_GATEWAY_THREADS`
/// asks for a multi-threaded one with that many workers.
///
/// Why one: a forwarded call is a few tasks handing one message along
/// (client pipe, rmcp's loops, the pipeline, the upstream's pipe), each
/// waking the next. On tokio's multi-threaded runtime every wake may land
/// on another worker (a futex wake, a context switch, the message's cache
/// lines moving cores): profiled, parking and waking workers was a fifth
/// of the gateway's CPU per call, more than its JSON. One thread does the
/// same work without the hand-offs, and a gateway is not CPU-bound: its
/// upstreams are. Plugin work that may take long already leaves the
/// thread (a cold plugin instance and reloads run on the blocking pool).
fn gateway_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::env::var("MENDER_GATEWAY_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 1);
    match threads {
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// A timer that fires every second, for as long as the gateway runs, so
/// that the runtime's next wake-up is never more than a second away.
///
/// Why: every call arms timers (its deadline, its attempt's), and tokio
/// wakes its parked driver through an eventfd whenever a new timer is due
/// before the driver's next planned wake-up, which it only recomputes when
/// it parks. With nothing else due for a minute, each call's timers (due
/// in seconds) were earlier: two eventfd writes and an extra `epoll_wait`
/// per call, measured with strace. With this floor they are later, and
/// the cost is one wake-up a second.
async fn timer_floor() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// The admin listener's socket and the metrics recorder behind it.
async fn bind_admin(
    addr: std::net::SocketAddr,
) -> Result<
    (
        tokio::net::TcpListener,
        metrics_exporter_prometheus::PrometheusHandle,
    ),
    String,
> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--admin {addr}: cannot listen: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let handle = admin::install_recorder()?;
    tracing::info!(admin = %bound, "admin listening on http://{bound} (/healthz, /readyz, /status, /metrics)");
    Ok((listener, handle))
}

/// The credentials `mcp`'s servers are handed (see
/// `ServerSpec::secret_values`).
pub(crate) fn secrets_of(mcp: &McpConfig) -> Vec<String> {
    mcp.servers
        .iter()
        .flat_map(|s| s.secret_values().map(str::to_owned))
        .collect()
}

/// A log redactor that knows `secrets`.
pub(crate) fn redactor_for(secrets: &[String]) -> Redactor {
    let mut redactor = Redactor::default();
    for s in secrets {
        redactor.add_secret(s.clone());
    }
    redactor
}

/// The status socket of the gateway started with `config`, or `socket`.
pub(crate) fn socket_of(config: Option<&Path>, socket: Option<PathBuf>) -> Result<PathBuf, String> {
    match (socket, config) {
        (Some(s), _) => Ok(s),
        (None, Some(c)) => {
            mender_mcp::status_socket_of(c).map_err(|e| format!("config error: {e}"))
        }
        (None, None) => Err("give --config (the gateway's mender.toml) or --socket".to_owned()),
    }
}

/// `mender status`: the health of the gateway started with the same
/// config (or listening on `--socket`).
pub fn status(config: Option<&Path>, socket: Option<PathBuf>, json: bool) -> ExitCode {
    let socket = match socket_of(config, socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mender status: {e}");
            return ExitCode::from(2);
        }
    };
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|t| t.block_on(mender_mcp::fetch_status(&socket)));
    match fetched {
        Ok(status) if json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(status) => {
            print_table(&status);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mender status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_table(status: &GatewayStatus) {
    out!(
        "mender mcp-proxy (pid {}, up {}s)",
        status.pid,
        status.uptime_s
    );
    out!(
        "{:<16} {:<12} {:>8} {:>8} {:>6} {:<10} {:>6} {:>8}  last error",
        "SERVER",
        "STATE",
        "FOR",
        "PID",
        "TOOLS",
        "CIRCUIT",
        "CALLS",
        "RESTARTS"
    );
    for u in &status.upstreams {
        // The process's trouble first; else why calls are failing.
        let last_error = match (&u.last_error, &u.last_call_error) {
            (Some(e), _) => e.clone(),
            (None, Some(e)) => format!(
                "call failed ({}): {e}",
                u.last_call_error_kind.as_deref().unwrap_or("error")
            ),
            (None, None) => "-".to_owned(),
        };
        let name = if u.optional {
            format!("{} (opt)", u.name)
        } else {
            u.name.clone()
        };
        out!(
            "{:<16} {:<12} {:>7}s {:>8} {:>6} {:<10} {:>6} {:>8}  {}",
            name,
            u.state,
            u.state_for_s,
            u.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            u.tools,
            u.circuit.as_deref().unwrap_or("-"),
            format!("{}/{}", u.calls - u.failures, u.calls),
            u.restarts,
            last_error
        );
        // A replicated server's processes, one line each, under it.
        for r in &u.replicas {
            out!(
                "{:<16} {:<12} {:>8} {:>8} {:>6} {:<10} {:>6} {:>8}{}",
                format!("  replica {}", r.replica),
                r.state,
                "",
                r.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                "",
                "",
                r.calls,
                r.restarts,
                if r.ejected { "  ejected" } else { "" }
            );
        }
        // A per-client server's processes, one line each, under it.
        for c in &u.clients {
            out!(
                "{:<16} {:<12} {:>8} {:>8} {:>6} {:<10} {:>6} {:>8}",
                format!("  session {}", c.session),
                c.state,
                "",
                c.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                "",
                "",
                format!("{}/{}", c.calls - c.failures, c.calls),
                c.restarts
            );
        }
    }
}
