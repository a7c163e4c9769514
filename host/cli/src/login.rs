//! `mender login SERVER`: signs in to a remote server whose `oauth` table
//! uses the authorization-code grant. It prints the authorization URL
//! (and opens nothing itself), waits for the browser to come back to a
//! listener on 127.0.0.1, and stores the tokens in the server's
//! `token-file` (0600), from which the gateway refreshes them.

use std::path::Path;
use std::process::ExitCode;

use mender_mcp::McpConfig;

/// Runs `mender login`; 0 once the tokens are stored, 2 on bad input,
/// 1 when the sign-in fails.
pub fn run(config: &Path, server: &str, log: &crate::logging::Logging) -> ExitCode {
    let mcp = match McpConfig::from_file(config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mender login: config error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(spec) = mcp.servers.iter().find(|s| s.name == server) else {
        let names: Vec<&str> = mcp.servers.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "mender login: {} has no [mcp.servers.{server}] (it has: {})",
            config.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        return ExitCode::from(2);
    };
    // Quiet: stdout is the URL and the result.
    let _telemetry = crate::logging::init(
        log,
        "warn,rmcp=error",
        crate::mcp::redactor_for(&crate::mcp::secrets_of(&mcp)),
    );
    let tokio = match tokio::runtime::Runtime::new() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mender login: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let show = |url: &str| {
        out!("Open this URL in a browser to sign in to `{server}`:\n\n  {url}\n");
        out!("Waiting for the browser to come back…");
    };
    match tokio.block_on(mender_mcp::login(spec, &show)) {
        Ok(path) => {
            out!("Signed in; tokens stored in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mender login: {e}");
            ExitCode::FAILURE
        }
    }
}
