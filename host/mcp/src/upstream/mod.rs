//! One upstream MCP server, supervised: a child process (or a session with
//! a remote server, `http.rs`) started, watched and restarted with backoff
//! when it exits or hangs (its requests are in `request.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerPeerInfo, Tool};
use rmcp::service::{ClientServiceExt as _, RunningService};
use rmcp::{Peer, RoleClient};
use tokio::sync::{Notify, watch};

use crate::classify::UpstreamError;
use crate::client::{Hub, UpstreamClient};
use crate::config::{RedactResults, ServerSpec};
use crate::raw_tools::RawTools;
use crate::scrub::ServerSecrets;
use crate::stderr_log::StderrLog;

pub(crate) mod http;
mod request;
mod stdio;

/// A server that stayed up this long has its restart delay reset: it was
/// healthy, so its next crash is a new incident, not part of a crash loop.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long a server whose stdin was closed (a planned restart) may take
/// to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// What an upstream offers, read after each (re)start and on its
/// list-changed notifications.
#[derive(Clone, Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) tools: Vec<Tool>,
    pub(crate) prompts: Vec<Prompt>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) templates: Vec<ResourceTemplate>,
    /// What the server declared (kept across restarts, unlike the
    /// connection): a server may serve resources it does not list, or
    /// complete arguments of prompts the client did not see.
    pub(crate) caps: rmcp::model::ServerCapabilities,
}

/// A live connection.
pub(crate) struct Connection {
    pub(crate) peer: Peer<RoleClient>,
    pub(crate) info: ServerPeerInfo,
    pub(crate) pid: Option<u32>,
}

/// Where an upstream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamState {
    /// Spawning and handshaking.
    Starting,
    /// Serving requests.
    Ready,
    /// Exited or killed; waiting out the restart delay.
    Restarting,
    /// Failed to start; waiting out the restart delay.
    Down,
    /// Running, but a call went unanswered and so did a ping after it:
    /// hung (killed and restarted unless `restart-on-hang = false`). Back
    /// to ready when it answers again.
    Unresponsive,
}

#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) state: UpstreamState,
    pub(crate) restarts: u64,
    pub(crate) last_error: Option<(String, &'static str)>,
    pub(crate) since: Instant,
    /// The last call that failed for good (after the pipeline's retries),
    /// and its kind; redacted.
    pub(crate) last_call_error: Option<(String, String)>,
}

/// One supervised upstream server.
pub(crate) struct Upstream {
    pub(crate) spec: ServerSpec,
    pub(crate) hub: Arc<Hub>,
    /// For redacting what the server prints and says.
    pub(crate) rt: mender::Runtime,
    /// The credentials its config hands it, longest first: redacted from
    /// its results (see `scrub`).
    pub(crate) secrets: ServerSecrets,
    conn: ArcSwapOption<Connection>,
    /// The last catalogue read; kept while the server restarts, so a
    /// required server's tools stay listed (their calls wait and retry).
    catalog: ArcSwapOption<Catalog>,
    health: Mutex<Health>,
    /// Bumped on every state change, for waiters (startup, tests).
    changed: watch::Sender<u64>,
    /// Wakes the supervisor to end the current process, for this reason
    /// (`true`: a failure, counted and backed off; `false`: a planned
    /// restart).
    restart_now: Notify,
    restart_reason: Mutex<Option<(String, bool)>>,
    refresh: Arc<Notify>,
    /// Its tools and tasks capability as the server sent them (see `raw_tools`).
    pub(crate) originals: RawTools,
    checking_hang: AtomicBool,
    pub(crate) calls: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Calls forwarded through the pipeline and not yet answered.
    pub(crate) in_flight: AtomicU64,
    /// The last lines of its stderr (a local server's), for `mender logs`.
    pub(crate) stderr: Arc<StderrLog>,
    /// Until when its calls go to its `failover` servers (see `failover`).
    pub(crate) ejected_until: Mutex<Option<Instant>>,
}

impl Upstream {
    pub(crate) fn new(
        spec: ServerSpec,
        hub: Arc<Hub>,
        rt: mender::Runtime,
        log_lines: usize,
    ) -> Arc<Upstream> {
        let secrets = ServerSecrets::new(spec.secret_values().map(str::to_owned));
        Arc::new(Upstream {
            spec,
            hub,
            rt,
            secrets,
            conn: ArcSwapOption::empty(),
            catalog: ArcSwapOption::empty(),
            health: Mutex::new(Health {
                state: UpstreamState::Starting,
                restarts: 0,
                last_error: None,
                since: Instant::now(),
                last_call_error: None,
            }),
            changed: watch::channel(0).0,
            restart_now: Notify::new(),
            restart_reason: Mutex::new(None),
            refresh: Arc::new(Notify::new()),
            originals: RawTools::default(),
            checking_hang: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            stderr: Arc::new(StderrLog::new(log_lines)),
            ejected_until: Mutex::new(None),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The server's own name for a tool the client knows as `listed`.
    pub(crate) fn own_tool_name<'a>(&self, listed: &'a str) -> Option<&'a str> {
        listed.strip_prefix(self.spec.prefix.as_str())
    }

    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.load_full()
    }

    pub(crate) fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.load_full()
    }

    pub(crate) fn health<T>(&self, f: impl FnOnce(&Health) -> T) -> T {
        f(&self.health.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records a call that failed for good, for `mender status`.
    pub(crate) fn call_failed(&self, message: &str, kind: &str) {
        let message = crate::scrub::text(&self.rt, &self.secrets.get(), message);
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.last_call_error = Some((message, kind.to_owned()));
    }

    /// A server marked unresponsive answered again.
    pub(crate) fn answered(&self) {
        if self.health(|h| h.state == UpstreamState::Unresponsive) {
            tracing::info!(server = %self.name(), "MCP server answers again");
            self.set_state(UpstreamState::Ready, None);
        }
    }

    pub(crate) fn set_state(&self, state: UpstreamState, error: Option<(String, &'static str)>) {
        {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            h.state = state;
            h.since = Instant::now();
            if let Some((message, kind)) = error {
                h.last_error = Some((self.rt.redact(&message), kind));
            }
            if state == UpstreamState::Restarting || state == UpstreamState::Down {
                h.restarts += 1;
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits until the upstream is ready or has failed to start once;
    /// `Err` carries the start error.
    pub(crate) async fn first_start(&self) -> Result<(), String> {
        let mut rx = self.changed.subscribe();
        loop {
            let outcome = self.health(|h| match h.state {
                UpstreamState::Ready => Some(Ok(())),
                UpstreamState::Down => Some(Err(h
                    .last_error
                    .as_ref()
                    .map_or_else(|| "failed to start".to_owned(), |e| e.0.clone()))),
                _ => None,
            });
            if let Some(outcome) = outcome {
                return outcome;
            }
            if rx.changed().await.is_err() {
                return Err("supervisor ended".into());
            }
        }
    }

    /// Runs the server until the process ends: start, watch, restart.
    pub(crate) async fn supervise(self: Arc<Self>) {
        let mut failed_starts: u32 = 0;
        loop {
            self.set_state(UpstreamState::Starting, None);
            let started = match self.start().await {
                Ok(started) => started,
                Err(e) => {
                    let e = self.rt.redact(&e.to_string());
                    tracing::warn!(server = %self.name(), target = %self.spec.target(), "MCP server failed to start: {e}");
                    self.set_state(UpstreamState::Down, Some((e.to_string(), "connect")));
                    failed_starts += 1;
                    tokio::time::sleep(self.restart_delay(failed_starts)).await;
                    continue;
                }
            };
            let (service, mut child) = started;
            let up_since = Instant::now();
            tracing::info!(server = %self.name(), pid = ?child.as_ref().and_then(|c| c.id()), "MCP server ready");
            let (reason, failure) = self.serve_until_gone(service, child.as_mut()).await;
            // The state changes before the connection goes and before the
            // reaping below (up to EXIT_GRACE): status must never show a
            // server as ready with no process behind it.
            if failure {
                tracing::warn!(server = %self.name(), "MCP server {reason}; restarting");
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
            tokio::time::sleep(self.restart_delay(failed_starts.max(1))).await;
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

    /// The MCP handshake with a remote server over `transport`, within
    /// `start-timeout`.
    async fn handshake<T, E, A>(
        &self,
        transport: T,
    ) -> Result<RunningService<RoleClient, UpstreamClient>, UpstreamError>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let target = self.spec.target();
        let serve = self
            .client()
            .serve_with_lifecycle(transport, self.spec.protocol.lifecycle());
        match tokio::time::timeout(self.spec.start_timeout, serve).await {
            Ok(Ok(service)) => Ok(service),
            Ok(Err(e)) => Err(UpstreamError::Spawn(format!(
                "{target} failed the MCP handshake: {}",
                crate::classify::error_chain(&e)
            ))),
            Err(_) => Err(UpstreamError::Spawn(format!(
                "{target} did not finish the MCP handshake within {:?}",
                self.spec.start_timeout
            ))),
        }
    }

    /// Connects (spawning the process of a local server), handshakes,
    /// reads the catalogue and publishes the connection.
    async fn start(
        &self,
    ) -> Result<
        (
            RunningService<RoleClient, UpstreamClient>,
            Option<tokio::process::Child>,
        ),
        UpstreamError,
    > {
        let (service, child) = match &self.spec.http {
            Some(endpoint) => match &endpoint.oauth {
                Some(oauth) => {
                    // A token is a secret of the log's and of this
                    // server's results alike.
                    let rt = self.rt.clone();
                    let own = self.secrets.clone();
                    let sink: crate::oauth::SecretSink = Arc::new(move |s: &str| {
                        rt.add_secret(s);
                        own.add(s);
                    });
                    let transport =
                        http::oauth_transport(&self.spec.name, endpoint, oauth, sink).await?;
                    (self.handshake(transport).await?, None)
                }
                None => (self.handshake(http::transport(endpoint)?).await?, None),
            },
            None => {
                let (service, child) = self.spawn().await?;
                (service, Some(child))
            }
        };
        let pid = child.as_ref().and_then(tokio::process::Child::id);
        let peer = service.peer().clone();
        let info = peer
            .peer_info()
            .map(|i| (*i).clone())
            .ok_or_else(|| UpstreamError::Spawn("no server info after the handshake".into()))?;
        let spec = &self.spec;
        let catalog = tokio::time::timeout(spec.start_timeout, read_catalog(spec, &peer, &info))
            .await
            .map_err(|_| {
                UpstreamError::Spawn(format!(
                    "listing its tools took over {:?}",
                    spec.start_timeout
                ))
            })??;
        self.catalog.store(Some(Arc::new(catalog)));
        self.conn
            .store(Some(Arc::new(Connection { peer, info, pid })));
        self.set_state(UpstreamState::Ready, None);
        self.hub.lists_changed().await;
        Ok((service, child))
    }

    /// The client side of one connection.
    fn client(&self) -> UpstreamClient {
        UpstreamClient {
            server: self.spec.name.clone(),
            secrets: (self.spec.redact_results != RedactResults::None)
                .then(|| self.secrets.clone()),
            hub: self.hub.clone(),
            refresh: self.refresh.clone(),
        }
    }

    /// Serves until the connection closes, or the process is killed as hung
    /// or restarted on purpose; says why, and whether it was a failure.
    async fn serve_until_gone(
        &self,
        service: RunningService<RoleClient, UpstreamClient>,
        mut child: Option<&mut tokio::process::Child>,
    ) -> (String, bool) {
        let ct = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                quit = &mut waiting => {
                    return match quit {
                        Ok(_) if child.is_none() => ("ended its connection".to_owned(), true),
                        Ok(_) => ("exited (its stdout closed)".to_owned(), true),
                        Err(e) => (format!("connection task failed: {e}"), true),
                    };
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
                    return (reason, failure);
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

/// What the server offers the client: its tools as `allow-tools` and
/// `deny-tools` leave them, named with its `prefix`.
async fn read_catalog(
    spec: &ServerSpec,
    peer: &Peer<RoleClient>,
    info: &ServerPeerInfo,
) -> Result<Catalog, UpstreamError> {
    let caps = &info.capabilities;
    let mut catalog = Catalog {
        caps: caps.clone(),
        ..Catalog::default()
    };
    if caps.tools.is_some() {
        catalog.tools = peer
            .list_all_tools()
            .await?
            .into_iter()
            .filter(|t| spec.offers_tool(&t.name))
            .map(|mut t| {
                if !spec.prefix.is_empty() {
                    t.name = format!("{}{}", spec.prefix, t.name).into();
                }
                t
            })
            .collect();
    }
    if caps.prompts.is_some() {
        catalog.prompts = peer.list_all_prompts().await?;
    }
    if caps.resources.is_some() {
        catalog.resources = peer.list_all_resources().await?;
        catalog.templates = peer.list_all_resource_templates().await?;
    }
    Ok(catalog)
}
