//! An agent's tool calls, made with the official MCP SDK (`rmcp`) and
//! routed through `mender::Runtime`: the strategy plugins decide retries,
//! and a server that crashed is started again on the next attempt.
//!
//! ```sh
//! cargo run --release --example mcp_agent -- \
//!     --tool get_current_time --args '{"timezone":"UTC"}' -- uvx mcp-server-time
//! ```
//!
//! It prints the tool's answer and each failed attempt, then exits 0 (or 1
//! when the call failed for good). `--retry` vouches that the tool is safe
//! to repeat when the server does not say so (or could not be asked).

use std::sync::Arc;

use mender::{CallSpec, Json, Runtime};
use mender_mcp::UpstreamError;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt as _};
use tokio::sync::Mutex;

/// A breaker in front of jittered backoff: the bundled plugins, nothing
/// written for this example.
const CONFIG: &str = r#"
[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 5, open-for = "10s" }

[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "200ms", max-attempts = 4 }

[services.default]
strategies = ["breaker", "backoff"]
"#;

/// The MCP server, connected on first use and again after it dies.
struct Server {
    command: Vec<String>,
    session: Mutex<Option<Arc<RunningService<RoleClient, ()>>>>,
}

impl Server {
    async fn session(&self) -> Result<Arc<RunningService<RoleClient, ()>>, UpstreamError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let mut cmd = tokio::process::Command::new(&self.command[0]);
        cmd.args(&self.command[1..]);
        let transport =
            TokioChildProcess::new(cmd).map_err(|e| UpstreamError::Spawn(e.to_string()))?;
        let session = ().serve(transport).await.map_err(|e| UpstreamError::Spawn(e.to_string()))?;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// One attempt: a transport error or an `isError` result is an error
    /// mender classifies (connect, timeout, rate-limited, auth, tool...).
    async fn call_once(
        &self,
        params: CallToolRequestParams,
    ) -> Result<Json<CallToolResult>, UpstreamError> {
        let session = self.session().await?;
        let result = session
            .peer()
            .call_tool(params)
            .await
            .map_err(UpstreamError::from)?;
        if result.is_error == Some(true) {
            return Err(UpstreamError::Tool(Box::new(result)));
        }
        Ok(Json(result))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let split = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let (flags, command) = (&argv[..split], argv.get(split + 1..).unwrap_or_default());
    let flag = |name: &str| {
        flags
            .iter()
            .position(|f| f == name)
            .and_then(|i| flags.get(i + 1))
    };
    let (Some(tool), false) = (flag("--tool"), command.is_empty()) else {
        eprintln!(
            "usage: mcp_agent --tool NAME [--args JSON] [--retry] -- SERVER_COMMAND [ARGS...]"
        );
        return std::process::ExitCode::from(2);
    };
    let arguments = match serde_json::from_str(flag("--args").map_or("{}", String::as_str)) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            eprintln!("--args must be a JSON object");
            return std::process::ExitCode::from(2);
        }
    };

    let rt = Runtime::builder()
        .config_str(CONFIG, "<mcp_agent>")
        .and_then(|b| b.build())
        .expect("the embedded config is valid");
    let server = Server {
        command: command.to_vec(),
        session: Mutex::new(None),
    };

    // Only a tool the server marks read-only or idempotent may be retried
    // (or one the user vouches for, in which case there is nothing to ask).
    let vouched = flags.iter().any(|f| f == "--retry");
    let idempotent = vouched || {
        let tools = match server.session().await {
            Ok(s) => s.peer().list_all_tools().await.unwrap_or_default(),
            Err(e) => {
                eprintln!("(cannot list tools: {e}; the call is not known to be safe to repeat)");
                Vec::new()
            }
        };
        mender_mcp::tool_is_idempotent(tools.iter().find(|t| t.name == tool.as_str()), tool, &[])
    };
    let spec =
        CallSpec::new(command[0].clone(), format!("tools/call:{tool}")).idempotent(idempotent);
    let params = CallToolRequestParams::new(tool.clone()).with_arguments(arguments);

    let outcome = rt
        .call(spec, |attempt| {
            let params = params.clone();
            let server = &server;
            async move {
                if attempt.number > 1 {
                    eprintln!("attempt {}", attempt.number);
                }
                server.call_once(params).await
            }
        })
        .await;
    match outcome {
        Ok(reply) => {
            for a in &reply.history {
                println!(
                    "failed attempt {}: {} ({}) -> {:?}",
                    a.attempt, a.kind, a.message, a.step
                );
            }
            println!("{}", mender_mcp::tool_text(&reply.value.0));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            for a in &e.history {
                println!(
                    "failed attempt {}: {} ({}) -> {:?}",
                    a.attempt, a.kind, a.message, a.step
                );
            }
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
