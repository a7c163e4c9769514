//! Per-client upstream processes (`share = "per-client"`) on the HTTP
//! front: each client session gets its own process of such a server,
//! started at the session's `initialize` and stopped when the session ends
//! (its `DELETE`, its idle expiry) or the gateway shuts down.
//!
//! A session's gateway handle holds its [`SessionServers`]; rmcp drops the
//! handle when the session's service ends, and the drop stops the
//! processes (the supervisors do the graceful part: close stdin, SIGTERM,
//! SIGKILL, reap). The [`PerClient`] registry counts the live ones against
//! each server's `max-processes` and lists them for `mender status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::ErrorData;

use crate::config::Share;
use crate::gateway::Gateway;
use crate::upstream::{Upstream, UpstreamState};

/// Every live per-client process, by session.
#[derive(Default)]
pub(crate) struct PerClient {
    /// Set by the HTTP front: on stdio there is one client, and every
    /// server is shared.
    active: AtomicBool,
    live: Mutex<BTreeMap<u64, Vec<Arc<Upstream>>>>,
    /// Processes of ended sessions until they are reaped, so a shutdown
    /// meanwhile still waits for them.
    stopping: Mutex<Vec<Arc<Upstream>>>,
}

impl PerClient {
    /// From now on, `per-client` servers get a process per session.
    pub(crate) fn activate(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    /// Whether `up` runs per client here (and so is never launched as a
    /// shared process).
    pub(crate) fn applies_to(&self, up: &Upstream) -> bool {
        self.active.load(Ordering::Relaxed) && up.spec.share == Share::PerClient
    }

    /// The live processes of the server named `name`, oldest session first.
    pub(crate) fn processes_of(&self, name: &str) -> Vec<Arc<Upstream>> {
        self.lock()
            .values()
            .flatten()
            .filter(|u| u.name() == name)
            .cloned()
            .collect()
    }

    /// A live process that lists tool `name` (for its raw definition).
    pub(crate) fn lister_of(&self, name: &str) -> Option<Arc<Upstream>> {
        self.all().into_iter().find(|u| {
            u.catalog()
                .is_some_and(|c| c.tools.iter().any(|t| t.name == name))
        })
    }

    /// Every live per-client process.
    pub(crate) fn all(&self) -> Vec<Arc<Upstream>> {
        self.lock().values().flatten().cloned().collect()
    }

    /// Every per-client process not yet reaped: the live ones and those
    /// of ended sessions still stopping.
    pub(crate) fn unreaped(&self) -> Vec<Arc<Upstream>> {
        let mut stopping = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        stopping.retain(|u| !u.health(|h| h.state == UpstreamState::Stopped));
        let mut all = self.all();
        all.extend(stopping.iter().cloned());
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<Arc<Upstream>>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Gateway {
    /// The same gateway, for another client's session: with its own
    /// processes of the per-client servers (started at its `initialize`).
    pub(crate) fn for_session(&self, session: u64) -> Gateway {
        let own = SessionServers::new(&self.per_client, &self.upstreams, session).map(Arc::new);
        let upstreams = match &own {
            None => self.upstreams.clone(),
            Some(own) => Arc::new(
                self.upstreams
                    .iter()
                    .map(|u| {
                        let mine = own.own.iter().find(|o| o.name() == u.name());
                        mine.unwrap_or(u).clone()
                    })
                    .collect(),
            ),
        };
        Gateway {
            session,
            upstreams,
            own,
            ..self.clone()
        }
    }

    /// Starts this session's own processes (at its `initialize`); the
    /// client is told why when it cannot have them.
    pub(crate) async fn launch_own(&self) -> Result<(), ErrorData> {
        match &self.own {
            Some(own) => own
                .launch()
                .await
                .map_err(|e| ErrorData::internal_error(format!("mender: {e}"), None)),
            None => Ok(()),
        }
    }
}

/// One session's own processes (not started until [`SessionServers::launch`]).
pub(crate) struct SessionServers {
    session: u64,
    pub(crate) own: Vec<Arc<Upstream>>,
    registry: Arc<PerClient>,
    launched: tokio::sync::OnceCell<Result<(), String>>,
}

impl SessionServers {
    /// New processes of each per-client server in `templates`, for
    /// `session`; `None` when there are none (or the front shares all).
    pub(crate) fn new(
        registry: &Arc<PerClient>,
        templates: &[Arc<Upstream>],
        session: u64,
    ) -> Option<SessionServers> {
        let own: Vec<Arc<Upstream>> = templates
            .iter()
            .filter(|t| registry.applies_to(t))
            .map(|t| Upstream::for_session(t, session))
            .collect();
        (!own.is_empty()).then(|| SessionServers {
            session,
            own,
            registry: registry.clone(),
            launched: tokio::sync::OnceCell::new(),
        })
    }

    /// Starts the session's processes, once: refused when a server already
    /// runs its `max-processes`; a required server that fails its first
    /// start fails the session (an optional one recovers on its own).
    pub(crate) async fn launch(&self) -> Result<(), String> {
        self.launched
            .get_or_init(|| async {
                self.admit()?;
                for up in &self.own {
                    up.spawn_supervisor();
                }
                for up in &self.own {
                    match up.first_start().await {
                        Ok(()) => {}
                        Err(e) if up.spec.optional => {
                            tracing::warn!(server = %up.name(), session = self.session, "optional per-client MCP server is down: {e}");
                        }
                        Err(e) => {
                            return Err(format!(
                                "required MCP server `{}` ({}) failed to start for this client: {e}",
                                up.name(),
                                up.spec.location
                            ));
                        }
                    }
                }
                Ok(())
            })
            .await
            .clone()
    }

    /// Counts the session in, unless a server is at its cap.
    fn admit(&self) -> Result<(), String> {
        let mut live = self.registry.lock();
        for up in &self.own {
            let running = live
                .values()
                .flatten()
                .filter(|u| u.name() == up.name())
                .count();
            if running >= up.spec.max_processes {
                return Err(format!(
                    "MCP server `{}` runs one process per client and already runs {running} \
                     (max-processes = {}, {}); try again when another client's session ends",
                    up.name(),
                    up.spec.max_processes,
                    up.spec.location
                ));
            }
        }
        live.insert(self.session, self.own.clone());
        Ok(())
    }
}

impl Drop for SessionServers {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.session);
        for up in &self.own {
            up.stop_soon();
        }
        // Only those that run: a session that never launched (a 2026-07-28
        // request has no session, and gets a handle per request) has
        // nothing to wait for.
        self.registry
            .stopping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(self.own.iter().filter(|u| u.is_supervised()).cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Hub;
    use crate::config::McpConfig;

    fn templates(text: &str) -> Vec<Arc<Upstream>> {
        let config = McpConfig::parse(text, "m.toml", std::path::Path::new(".")).unwrap();
        let rt = mender::Runtime::builder().build().unwrap();
        let hub = Arc::new(Hub::default());
        config
            .servers
            .into_iter()
            .map(|s| Upstream::new(s, hub.clone(), rt.clone(), 10))
            .collect()
    }

    #[test]
    fn only_per_client_servers_and_only_on_the_http_front() {
        let ups = templates(
            "[mcp.servers.a]\ncommand = \"a\"\nshare = \"per-client\"\n\
             [mcp.servers.b]\ncommand = \"b\"\n",
        );
        let registry = Arc::new(PerClient::default());
        // stdio: everything is shared.
        assert!(SessionServers::new(&registry, &ups, 1).is_none());
        registry.activate();
        let own = SessionServers::new(&registry, &ups, 1).unwrap();
        assert_eq!(own.own.len(), 1);
        assert_eq!((own.own[0].name(), own.own[0].session), ("a", Some(1)));
        assert_eq!(own.own[0].key(), "a#1");
        // Never launched (a request with no session): nothing to wait for
        // once dropped, so handles made per request do not pile up.
        drop(own);
        assert!(registry.unreaped().is_empty());
    }

    #[test]
    fn a_session_past_max_processes_is_refused_with_the_limit_and_line() {
        let ups = templates(
            "[mcp.servers.a]\ncommand = \"a\"\nshare = \"per-client\"\nmax-processes = 1\n",
        );
        let registry = Arc::new(PerClient::default());
        registry.activate();
        let first = SessionServers::new(&registry, &ups, 1).unwrap();
        first.admit().unwrap();
        let second = SessionServers::new(&registry, &ups, 2).unwrap();
        let e = second.admit().unwrap_err();
        assert!(e.contains("max-processes = 1, m.toml:1"), "{e}");
        assert_eq!(registry.processes_of("a").len(), 1);
        // The first session's end frees its place.
        drop(first);
        second.admit().unwrap();
        assert_eq!(registry.processes_of("a")[0].session, Some(2));
    }
}
