//! `mender call TARGET`: a one-shot MCP client through the gateway. It
//! connects to one server (a URL, or a server named in `--config`), lists
//! its tools, and calls one if asked, through the same pipeline, restarts
//! and classification as `mender mcp-proxy` — the gateway runs in this
//! process and the client talks to it over an in-memory pipe. For scripts,
//! for trying a server, and for test suites that drive "a client command
//! with the server URL appended".

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mender::Runtime;
use mender_mcp::{McpConfig, McpProxy};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;

use crate::logging::{self, Logging};

/// The arguments of `mender call`.
#[derive(clap::Args)]
pub struct Args {
    /// The mender.toml whose plugins and services the call goes through
    /// (and whose `[mcp.servers.*]` TARGET may name).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The tool to call (without it: list the tools).
    #[arg(long)]
    tool: Option<String>,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}", requires = "tool")]
    args: String,
    /// A header for a URL target, `NAME: VALUE` (repeatable). `${VAR}` in
    /// the value is read from the environment and redacted everywhere.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The MCP era to speak to TARGET: `2025-11-25` (initialize and a
    /// session), `2026-07-28` (server/discover, stateless) or `auto`.
    /// Default: a configured server's `protocol`, else 2025-11-25.
    #[arg(long, value_parser = ["2025-11-25", "2026-07-28", "auto"])]
    protocol: Option<String>,
    /// Print JSON (the tool list, or the whole tool result).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    oauth: OAuthArgs,
    /// A server's MCP endpoint (`http://…`, `https://…`), or the name of a
    /// server in `--config`. Last, so a command line can append it.
    target: String,
}

/// OAuth for a URL target (a configured server has its `oauth` table);
/// any of these turns it on.
#[derive(clap::Args)]
struct OAuthArgs {
    /// Sign in with OAuth (authorization code + PKCE; the client registers
    /// itself where the server offers it). Tokens are kept in memory only.
    #[arg(long)]
    oauth: bool,
    /// The grant: `authorization_code` (default) or `client_credentials`.
    #[arg(long, value_name = "GRANT")]
    oauth_grant: Option<String>,
    /// A pre-registered client id.
    #[arg(long, value_name = "ID")]
    oauth_client_id: Option<String>,
    /// Its secret; write `${VAR}` to read it from the environment (the
    /// command line is visible to other users).
    #[arg(long, value_name = "SECRET")]
    oauth_client_secret: Option<String>,
    /// A scope to ask for (repeatable).
    #[arg(long = "oauth-scope", value_name = "SCOPE")]
    oauth_scopes: Vec<String>,
    /// Follow the authorization URL without a person, for a test
    /// authorization server that approves at once (the MCP conformance
    /// suite's). Also for a configured server.
    #[arg(long)]
    oauth_headless: bool,
}

impl OAuthArgs {
    fn any_for_url(&self) -> bool {
        self.oauth
            || self.oauth_grant.is_some()
            || self.oauth_client_id.is_some()
            || self.oauth_client_secret.is_some()
            || !self.oauth_scopes.is_empty()
            || self.oauth_headless
    }

    /// The `oauth` table for a URL target, as TOML.
    fn table(&self) -> String {
        let json = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let mut keys = Vec::new();
        if let Some(g) = &self.oauth_grant {
            keys.push(format!("grant = {}", json(g)));
        }
        if let Some(id) = &self.oauth_client_id {
            keys.push(format!("client-id = {}", json(id)));
        }
        if let Some(secret) = &self.oauth_client_secret {
            keys.push(format!("client-secret = {}", json(secret)));
        }
        if !self.oauth_scopes.is_empty() {
            let scopes: Vec<String> = self.oauth_scopes.iter().map(|s| json(s)).collect();
            keys.push(format!("scopes = [{}]", scopes.join(", ")));
        }
        format!("oauth = {{ {} }}\n", keys.join(", "))
    }
}

/// Runs `mender call`; 0 when the tools were listed or the call succeeded,
/// 1 when the call failed (an `isError` result), 2 on bad input.
pub fn run(args: Args, log: &Logging) -> ExitCode {
    let mut mcp = match target_config(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mender call: {e}");
            return ExitCode::from(2);
        }
    };
    let arguments = match serde_json::from_str::<serde_json::Value>(&args.args) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            eprintln!(
                "mender call: --args must be a JSON object, got {:?}",
                args.args
            );
            return ExitCode::from(2);
        }
    };
    let secrets = crate::mcp::secrets_of(&mcp);
    // Quiet by default: stdout is the answer, stderr only trouble.
    let redactor = crate::mcp::redactor_for(&secrets);
    let _telemetry = logging::init(log, "warn,rmcp=error", redactor.clone());
    // A private status socket: a gateway running on the same config keeps
    // its own.
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mender call: no temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    mcp.status_socket = scratch.path().join("status.sock");
    let tokio = match tokio::runtime::Runtime::new() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mender call: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio.block_on(async move {
        let builder = match &args.config {
            Some(path) => Runtime::builder().config_file(path),
            None => Ok(Runtime::builder()),
        };
        // The log writer's redactor (holding `secrets`): a token fetched
        // while running is redacted in the logs too.
        let rt = match builder.and_then(|b| b.redactor(redactor).build()) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("mender call: {e}");
                return ExitCode::from(2);
            }
        };
        match session(rt, mcp, args.tool.as_deref(), arguments, args.json).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mender call: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The gateway config for TARGET: the named server of `--config`, or a
/// remote server at the URL (parsed as a `[mcp.servers.*]` table would be,
/// so it gets the same checks and defaults).
fn target_config(args: &Args) -> Result<McpConfig, String> {
    let url = args.target.starts_with("http://") || args.target.starts_with("https://");
    if !url {
        if !args.headers.is_empty() {
            return Err(
                "--header is for a URL target; a configured server has its own `headers`".into(),
            );
        }
        let o = &args.oauth;
        if o.oauth
            || o.oauth_grant.is_some()
            || o.oauth_client_id.is_some()
            || o.oauth_client_secret.is_some()
            || !o.oauth_scopes.is_empty()
        {
            return Err(
                "--oauth… options are for a URL target; a configured server has its own `oauth` table (only --oauth-headless applies to it)".into(),
            );
        }
        let Some(path) = &args.config else {
            return Err(format!(
                "{:?} is not a URL (http://, https://); to name a server, give --config",
                args.target
            ));
        };
        let mut mcp = McpConfig::from_file(path).map_err(|e| format!("config error: {e}"))?;
        let names: Vec<String> = mcp.servers.iter().map(|s| s.name.clone()).collect();
        mcp.servers.retain(|s| s.name == args.target);
        if mcp.servers.is_empty() {
            return Err(format!(
                "{} has no [mcp.servers.{}] (it has: {})",
                path.display(),
                args.target,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
        if let Some(protocol) = &args.protocol {
            mcp.servers[0].protocol = protocol_of(protocol)?;
        }
        if args.oauth.oauth_headless {
            headless(&mut mcp);
        }
        return Ok(mcp);
    }
    let json = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("--header {h:?} must be `NAME: VALUE`"));
        };
        headers.push(format!("{} = {}", json(name.trim()), json(value.trim())));
    }
    let mut text = format!(
        "[mcp.servers.target]\nurl = {}\nheaders = {{ {} }}\nprotocol = {}\n",
        json(&args.target),
        headers.join(", "),
        json(args.protocol.as_deref().unwrap_or("2025-11-25"))
    );
    if args.oauth.any_for_url() {
        text.push_str(&args.oauth.table());
    }
    let base = args
        .config
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let mut mcp = McpConfig::parse(&text, "the command line", base).map_err(|e| e.message)?;
    for s in &mut mcp.servers {
        if let Some(o) = s.http.as_mut().and_then(|h| h.oauth.as_mut()) {
            // One shot: nothing of a URL target's sign-in outlives it.
            o.token_file = None;
        }
    }
    if args.oauth.oauth_headless {
        headless(&mut mcp);
    }
    Ok(mcp)
}

/// Every OAuth server of `mcp` signs in without a person.
fn headless(mcp: &mut McpConfig) {
    for s in &mut mcp.servers {
        if let Some(o) = s.http.as_mut().and_then(|h| h.oauth.as_mut()) {
            o.headless = true;
        }
    }
}

/// Connects a client to the gateway, lists or calls, prints the answer.
async fn session(
    rt: Runtime,
    mcp: McpConfig,
    tool: Option<&str>,
    arguments: serde_json::Map<String, serde_json::Value>,
    json: bool,
) -> Result<ExitCode, String> {
    let proxy = McpProxy::start(rt, mcp).await.map_err(|e| e.to_string())?;
    let (client_side, gateway_side) = tokio::io::duplex(1 << 20);
    let (gateway_read, gateway_write) = tokio::io::split(gateway_side);
    let gateway = tokio::spawn(proxy.serve_io(gateway_read, gateway_write));
    let client = match ().serve(tokio::io::split(client_side)).await {
        Ok(c) => c,
        Err(e) => {
            // The gateway's own error (a required server that cannot
            // start) says more than the client's "connection closed".
            if let Ok(Err(why)) = gateway.await {
                return Err(why.to_string());
            }
            return Err(format!("initialize failed: {e}"));
        }
    };
    let Some(tool) = tool else {
        let tools = client
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list: {e}"))?;
        if json {
            out!(
                "{}",
                serde_json::to_string_pretty(&tools).unwrap_or_default()
            );
        } else {
            for t in &tools {
                let about = t
                    .description
                    .as_deref()
                    .and_then(|d| d.lines().next())
                    .unwrap_or("");
                out!("{}\t{about}", t.name);
            }
        }
        let _ = client.cancel().await;
        return Ok(ExitCode::SUCCESS);
    };
    let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    let result = client
        .call_tool(request)
        .await
        .map_err(|e| format!("tools/call {tool}: {e}"))?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        for block in &result.content {
            match block.as_text() {
                Some(t) => out!("{}", t.text),
                None => out!("{}", serde_json::to_string(block).unwrap_or_default()),
            }
        }
    }
    let _ = client.cancel().await;
    Ok(if result.is_error == Some(true) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `--protocol`'s value as the config's setting (clap has checked it).
fn protocol_of(value: &str) -> Result<mender_mcp::UpstreamProtocol, String> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|e| format!("--protocol {value:?}: {e}"))
}
