//! One upstream MCP server, supervised: a child process (or a session with
//! a remote server, `http.rs`) started, watched and restarted with backoff
//! when it exits or hangs (its requests are in `request.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerPeerInfo, Tool};
use rmcp::service::{ClientServiceExt as _, RunningService};
use rmcp::{Peer, RoleClient};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::classify::UpstreamError;
use crate::client::{Hub, UpstreamClient};
use crate::config::{RedactResults, ServerSpec};
use crate::raw_tools::RawTools;
use crate::scrub::ServerSecrets;
use crate::stderr_log::StderrLog;

pub(crate) mod http;
mod request;
mod stdio;
mod supervisor;

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
    /// Stopped for good: its client's session ended, or the gateway is
    /// shutting down.
    Stopped,
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
    /// The HTTP client session this process serves alone (`share =
    /// "per-client"`); `None` for a process every client shares.
    pub(crate) session: Option<u64>,
    /// Which of the server's `replicas` this process is (1 for the
    /// server's own entry, which every server has).
    pub(crate) replica: usize,
    /// The server's other replicas (2, 3, …), each supervised on its own;
    /// held by replica 1 only (see `replicas`).
    pub(crate) replicas: Vec<Arc<Upstream>>,
    /// Where the next call's rotation over the replicas starts (replica
    /// 1's; see `failover`).
    pub(crate) rotation: AtomicUsize,
    /// Attempts sent to this process: the share of the server's calls a
    /// replica served, for `mender status`.
    pub(crate) attempts: AtomicU64,
    /// Cancelled to stop the server for good (see `supervisor`).
    stop: CancellationToken,
    /// The supervisor's task, once spawned: awaited by a stop.
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Upstream {
    pub(crate) fn new(
        spec: ServerSpec,
        hub: Arc<Hub>,
        rt: mender::Runtime,
        log_lines: usize,
    ) -> Arc<Upstream> {
        let stderr = Arc::new(StderrLog::new(log_lines));
        // Replicas run the same command: their stderr is kept with the
        // server's (`mender logs` names the server).
        let others = (2..=spec.replicas)
            .map(|n| {
                let (hub, rt, stderr) = (hub.clone(), rt.clone(), stderr.clone());
                Self::build(spec.clone(), hub, rt, stderr, None, n, Vec::new())
            })
            .collect();
        Self::build(spec, hub, rt, stderr, None, 1, others)
    }

    /// Another process of `template`'s server, for client `session` alone:
    /// its stderr kept with the server's (`mender logs` names the server).
    pub(crate) fn for_session(template: &Upstream, session: u64) -> Arc<Upstream> {
        Self::build(
            template.spec.clone(),
            template.hub.clone(),
            template.rt.clone(),
            template.stderr.clone(),
            Some(session),
            1,
            Vec::new(),
        )
    }

    fn build(
        spec: ServerSpec,
        hub: Arc<Hub>,
        rt: mender::Runtime,
        stderr: Arc<StderrLog>,
        session: Option<u64>,
        replica: usize,
        replicas: Vec<Arc<Upstream>>,
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
            stderr,
            ejected_until: Mutex::new(None),
            session,
            replica,
            replicas,
            rotation: AtomicUsize::new(0),
            attempts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            supervisor: Mutex::new(None),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// Which process of the server this is, for routing its requests and
    /// progress: the name, `name#session` for a per-client one, or
    /// `name#rN` for replica N > 1 (two processes number their requests
    /// alike). Also a replica's name among a call's upstreams.
    pub(crate) fn key(&self) -> String {
        match (self.session, self.replica) {
            (Some(s), _) => format!("{}#{s}", self.spec.name),
            (None, 1) => self.spec.name.clone(),
            (None, n) => format!("{}#r{n}", self.spec.name),
        }
    }

    /// The server's processes: this one (replica 1), then its other
    /// replicas; just this one for a server without replicas.
    pub(crate) fn replica_set(self: &Arc<Self>) -> Vec<Arc<Upstream>> {
        std::iter::once(self.clone())
            .chain(self.replicas.iter().cloned())
            .collect()
    }

    /// The process whose catalogue and capabilities stand for the server's:
    /// the first replica that is up (they run the same command), else
    /// replica 1, whose last catalogue outlives its restarts.
    pub(crate) fn lister(&self) -> &Upstream {
        let up = |u: &Upstream| {
            u.catalog.load().is_some()
                && u.health(|h| {
                    matches!(h.state, UpstreamState::Ready | UpstreamState::Unresponsive)
                })
        };
        if self.replicas.is_empty() || up(self) {
            return self;
        }
        self.replicas
            .iter()
            .map(|r| &**r)
            .find(|r| up(r))
            .unwrap_or(self)
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
    /// `Err` carries the start error. A server with replicas has started
    /// when one of them has (they start together; one that failed is
    /// restarted by its supervisor and joins the rotation when ready).
    pub(crate) async fn first_start(&self) -> Result<(), String> {
        let mut first = self.own_first_start().await;
        for r in &self.replicas {
            match r.own_first_start().await {
                Ok(()) => first = first.or(Ok(())),
                Err(e) => {
                    tracing::warn!(server = %self.name(), replica = r.replica, "replica failed its first start: {e}")
                }
            }
        }
        first
    }

    /// [`Upstream::first_start`] of this process alone.
    async fn own_first_start(&self) -> Result<(), String> {
        let mut rx = self.changed.subscribe();
        loop {
            let outcome = self.health(|h| match h.state {
                UpstreamState::Ready => Some(Ok(())),
                UpstreamState::Down => Some(Err(h
                    .last_error
                    .as_ref()
                    .map_or_else(|| "failed to start".to_owned(), |e| e.0.clone()))),
                UpstreamState::Stopped => Some(Err("stopped".to_owned())),
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
        // A new process has failed nothing yet: an ejection earned by the
        // last one (it hung, it died) ends, and its traffic returns now.
        *self.ejected_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
            key: self.key(),
            originals: self.originals.clone(),
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
