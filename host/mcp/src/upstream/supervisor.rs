//! The supervisor of one upstream: start it, watch it, restart it with
//! backoff when it exits or hangs — and stop it for good when its client's
//! session ends or the gateway shuts down.
//!
//! A stop is graceful first: the server's stdin is closed (the MCP way to
//! say goodbye over stdio), then it gets [`EXIT_GRACE`] to exit, then
//! SIGTERM and [`TERM_GRACE`], then SIGKILL; it is always reaped, so no
//! zombie is left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::service::RunningService;

use super::{Upstream, UpstreamState, read_catalog};
use crate::client::UpstreamClient;

/// A server that stayed up this long has its restart delay reset: it was
/// healthy, so its next crash is a new incident, not part of a crash loop.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long a server whose stdin was closed (a planned restart, a stop)
/// may take to exit before it is signalled.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// How long a stopped server may take to exit on SIGTERM (flushing,
/// closing a browser it drives) before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Why one process's service ended.
enum Gone {
    /// A failure (exit, crash, hang) or a planned restart (`false`).
    Restart(String, bool),
    /// Stopped for good.
    Stop,
}

impl Upstream {
    /// Spawns the supervisor (once) on the current runtime, and each of
    /// its replicas' own.
    pub(crate) fn spawn_supervisor(self: &Arc<Self>) {
        for r in &self.replicas {
            r.spawn_supervisor();
        }
        let mut slot = self.supervisor.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() && !self.stop.is_cancelled() {
            *slot = Some(tokio::spawn(self.clone().supervise()));
        }
    }

    /// Whether its supervisor was spawned (and not yet awaited by a stop).
    pub(crate) fn is_supervised(&self) -> bool {
        self.supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Asks the supervisor to stop the server for good, without waiting
    /// (from a `Drop`); [`Upstream::stop`] waits.
    pub(crate) fn stop_soon(&self) {
        for r in &self.replicas {
            r.stop_soon();
        }
        self.stop.cancel();
    }

    /// Stops the server for good (every replica) and waits until its
    /// processes are reaped.
    pub(crate) async fn stop(&self) {
        for r in &self.replicas {
            r.stop_soon();
        }
        for r in &self.replicas {
            Box::pin(r.stop()).await;
        }
        self.stop.cancel();
        let task = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Runs the server until stopped: start, watch, restart.
    async fn supervise(self: Arc<Self>) {
        let mut failed_starts: u32 = 0;
        loop {
            self.set_state(UpstreamState::Starting, None);
            let started = tokio::select! {
                started = self.start() => started,
                () = self.stop.cancelled() => break,
            };
            let (service, mut child) = match started {
                Ok(started) => started,
                Err(e) => {
                    let e = self.rt.redact(&e.to_string());
                    tracing::warn!(server = %self.name(), target = %self.spec.target(), "MCP server failed to start: {e}");
                    self.set_state(UpstreamState::Down, Some((e.to_string(), "connect")));
                    failed_starts += 1;
                    if self.pause(self.restart_delay(failed_starts)).await {
                        break;
                    }
                    continue;
                }
            };
            let up_since = Instant::now();
            tracing::info!(server = %self.name(), session = ?self.session, replica = self.replica, pid = ?child.as_ref().and_then(|c| c.id()), "MCP server ready");
            let gone = self.serve_until_gone(service, child.as_mut()).await;
            let Gone::Restart(reason, failure) = gone else {
                self.conn.store(None);
                if let Some(child) = &mut child {
                    reap(self.name(), child).await;
                }
                break;
            };
            // The state changes before the connection goes and before the
            // reaping below (up to EXIT_GRACE): status must never show a
            // server as ready with no process behind it.
            if failure {
                tracing::warn!(server = %self.name(), replica = self.replica, "MCP server {reason}; restarting");
                self.set_state(UpstreamState::Restarting, Some((reason, "connect")));
            } else {
                tracing::info!(server = %self.name(), "restarting MCP server {reason}");
                self.set_state(UpstreamState::Starting, None);
            }
            self.conn.store(None);
            // Reap it: it has exited, was killed, or gets a moment to exit
            // on its closed stdin before it is killed.
            if let Some(child) = &mut child
                && tokio::time::timeout(EXIT_GRACE, child.wait())
                    .await
                    .is_err()
            {
                let _ = child.kill().await;
            }
            if !failure {
                continue;
            }
            self.hub.lists_changed().await;
            failed_starts = if up_since.elapsed() >= HEALTHY_AFTER {
                0
            } else {
                failed_starts + 1
            };
            if self.pause(self.restart_delay(failed_starts.max(1))).await {
                break;
            }
        }
        self.conn.store(None);
        self.set_state(UpstreamState::Stopped, None);
        tracing::info!(server = %self.name(), session = ?self.session, "MCP server stopped");
    }

    /// Waits out a restart delay; `true` when stopped meanwhile.
    async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            () = self.stop.cancelled() => true,
        }
    }

    /// Doubling per failure in a row, from `restart-backoff.base` up to its
    /// `max`.
    fn restart_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.spec
            .restart_base
            .saturating_mul(factor)
            .min(self.spec.restart_max)
    }

    /// Serves until the connection closes, the process is killed as hung
    /// or restarted on purpose, or the server is stopped; says why.
    async fn serve_until_gone(
        &self,
        service: RunningService<RoleClient, UpstreamClient>,
        mut child: Option<&mut tokio::process::Child>,
    ) -> Gone {
        let ct = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                quit = &mut waiting => {
                    let why = match quit {
                        Ok(_) if child.is_none() => "ended its connection".to_owned(),
                        Ok(_) => "exited (its stdout closed)".to_owned(),
                        Err(e) => format!("connection task failed: {e}"),
                    };
                    return Gone::Restart(why, true);
                }
                () = self.stop.cancelled() => {
                    // Closing the session closes the server's stdin; the
                    // reaping after this waits for it to exit on that.
                    ct.cancel();
                    let _ = (&mut waiting).await;
                    return Gone::Stop;
                }
                () = self.restart_now.notified() => {
                    let (reason, failure) = self
                        .restart_reason
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_else(|| ("on request".to_owned(), true));
                    if failure && let Some(child) = child.as_mut() {
                        // SIGKILL (which also ends a SIGSTOPped process): a
                        // hung server cannot be asked to leave.
                        let _ = child.start_kill();
                    }
                    // Closing the session closes the server's stdin: after
                    // a planned restart it exits on its own.
                    ct.cancel();
                    let _ = (&mut waiting).await;
                    return Gone::Restart(reason, failure);
                }
                () = self.refresh.notified() => {
                    let Some(conn) = self.connection() else { continue };
                    let read = tokio::time::timeout(
                        self.spec.call_timeout,
                        read_catalog(&self.spec, &conn.peer, &conn.info),
                    );
                    // Reading the lists of a server that just hung would
                    // hold this loop for a whole call-timeout: a restart
                    // asked for meanwhile (the hang check) goes first.
                    tokio::select! {
                        read = read => {
                            if let Ok(Ok(c)) = read {
                                self.catalog.store(Some(Arc::new(c)));
                                self.hub.lists_changed().await;
                            }
                        }
                        () = self.restart_now.notified() => self.restart_now.notify_one(),
                    }
                }
            }
        }
    }
}

/// Ends a stopped server's process and reaps it: it has [`EXIT_GRACE`] to
/// exit on its closed stdin, then SIGTERM and [`TERM_GRACE`], then SIGKILL.
async fn reap(server: &str, child: &mut tokio::process::Child) {
    if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
        return;
    }
    if let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
        tracing::info!(server = %server, pid, "MCP server did not exit on its closed stdin; sending SIGTERM");
        // SAFETY: `kill` has no memory effects; the pid is our own child,
        // not yet reaped (`id()` is `None` once it is), so it names no
        // other process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    tracing::warn!(server = %server, "MCP server ignored SIGTERM; killing it");
    // Kills and waits: reaped.
    let _ = child.kill().await;
}
