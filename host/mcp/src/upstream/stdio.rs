//! Running a local upstream: the child process, its stdio as the MCP
//! transport (stdout tapped for the raw tool definitions), and its stderr
//! passed to the log, the last lines kept to explain a failed start and
//! for `mender logs`.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::service::{ClientServiceExt as _, RunningService};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::Upstream;
use crate::classify::UpstreamError;
use crate::client::UpstreamClient;
use crate::raw_tools::TapReader;
use crate::stderr_log::StderrLog;

/// Lines of a server's stderr kept to explain a failed start.
const STDERR_TAIL: usize = 20;

impl Upstream {
    /// Spawns a local server's process and handshakes over its stdio.
    pub(super) async fn spawn(
        &self,
    ) -> Result<
        (
            RunningService<RoleClient, UpstreamClient>,
            tokio::process::Child,
        ),
        UpstreamError,
    > {
        let spec = &self.spec;
        let mut cmd = tokio::process::Command::new(&spec.command);
        cmd.args(&spec.args)
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Whatever happens to the gateway's task, no server outlives it.
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| UpstreamError::Spawn(format!("`{}`: {e}", spec.command)))?;
        let (Some(stdin), Some(stdout), stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(UpstreamError::Spawn("no stdio pipes to the child".into()));
        };
        let transport = (TapReader::new(stdout, self.originals.clone()), stdin);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_done = stderr.map(|s| {
            tokio::spawn(log_stderr(
                spec.name.clone(),
                s,
                tail.clone(),
                self.stderr.clone(),
                self.rt.clone(),
            ))
        });
        let client = self.client();
        let explain = |what: String| async {
            // A server that dies at once says why on stderr; wait briefly
            // for the pipe to drain so the message can include it.
            if let Some(done) = stderr_done {
                let _ = tokio::time::timeout(Duration::from_millis(300), done).await;
            }
            let tail: Vec<String> = tail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            if tail.is_empty() {
                UpstreamError::Spawn(what)
            } else {
                UpstreamError::Spawn(format!(
                    "{what}; its stderr ended with: {}",
                    tail.join(" | ")
                ))
            }
        };
        let service = match tokio::time::timeout(
            spec.start_timeout,
            client.serve_with_lifecycle(transport, spec.protocol.lifecycle()),
        )
        .await
        {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                return Err(
                    explain(format!("`{}` failed the MCP handshake: {e}", spec.command)).await,
                );
            }
            Err(_) => {
                return Err(explain(format!(
                    "`{}` did not finish the MCP handshake within {:?}",
                    spec.command, spec.start_timeout
                ))
                .await);
            }
        };
        Ok((service, child))
    }
}

/// Passes a server's stderr to the log, line by line, keeping the last few
/// lines to explain a failed start and the last `log-lines` for `mender
/// logs`.
async fn log_stderr(
    server: String,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    kept: Arc<StderrLog>,
    rt: mender::Runtime,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = rt.redact(&line);
        tracing::info!(target: "mender::mcp::upstream", server = %server, "{line}");
        kept.push(&server, line.clone());
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}
