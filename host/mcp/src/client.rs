//! The gateway's side of each upstream connection: what the upstream sends
//! unasked (progress, logs, list changes, roots and sampling requests) is
//! passed on to the downstream client through the [`Hub`].

// Roots, sampling, logging and resources/subscribe are deprecated by the
// 2026-07-28 protocol (SEP-2577) but are what handshake-era servers use
// today; the gateway forwards them as they are.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, CustomNotification, ElicitRequest,
    ElicitRequestParams, ElicitResult, ErrorData, Implementation, ListRootsRequest,
    ListRootsResult, LoggingMessageNotification, LoggingMessageNotificationParam,
    ProgressNotification, ProgressNotificationParam, ProgressToken, PromptListChangedNotification,
    ResourceListChangedNotification, ResourceUpdatedNotification, ResourceUpdatedNotificationParam,
    ServerNotification, ServerRequest, ToolListChangedNotification,
};
use rmcp::model::{GetExtensions as _, RequestId};
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, OriginatingRequestId, RequestContext,
};
use rmcp::{ClientHandler, Peer, RoleClient, RoleServer};
use tokio::sync::Notify;

/// A progress token as one downstream client chose it: tokens are the
/// clients' own, so two clients may pick the same one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientToken {
    /// The client's session (0 on stdio; one per HTTP session).
    pub(crate) session: u64,
    pub(crate) token: ProgressToken,
}

/// The downstream request a forwarded request serves: which client asked,
/// with which request id, and its progress token if it wants progress.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) session: u64,
    pub(crate) request: RequestId,
    pub(crate) progress: Option<ProgressToken>,
}

impl Caller {
    /// Where progress for this caller goes, if it asked for progress.
    pub(crate) fn progress_token(&self) -> Option<ClientToken> {
        self.progress.clone().map(|token| ClientToken {
            session: self.session,
            token,
        })
    }
}

/// What the gateway and its upstream connections share: the downstream
/// clients (once connected), where upstream progress goes, and which
/// client's request each upstream request in flight serves.
#[derive(Default)]
pub(crate) struct Hub {
    /// By session, oldest first.
    downstream: RwLock<BTreeMap<u64, Peer<RoleServer>>>,
    /// Upstream process (its [`Upstream::key`](crate::upstream::Upstream))
    /// and progress token (the gateway's own, one per forwarded request:
    /// each connection counts its own from 0) -> the client and token it
    /// is for.
    progress: Mutex<HashMap<(String, ProgressToken), ClientToken>>,
    /// The highest progress sent to a client, per its token, across all
    /// attempts of its call: the spec says progress MUST increase, and a
    /// retried attempt starts again from zero.
    sent: Mutex<HashMap<ClientToken, f64>>,
    /// What the gateway offers upstream servers on the client's behalf: the
    /// client's own roots, sampling and elicitation (none before it
    /// connects), so a server sees the same client through the gateway as
    /// directly (server-everything, for one, adds tools per capability).
    offered: RwLock<ClientCapabilities>,
    /// Upstream requests in flight, by (upstream key, upstream request id), and
    /// the client request each serves: a server's own request (sampling,
    /// elicitation, roots) made while serving one goes to that client, on
    /// that request's stream.
    in_flight: Mutex<HashMap<(String, RequestId), Caller>>,
    /// Which upstream and client each task created through the gateway
    /// belongs to (2025-11-25 tasks; see `tasks`).
    pub(crate) tasks: crate::tasks::Routes,
}

impl Hub {
    /// Remembers a downstream client, so notifications can reach it.
    pub(crate) fn set_downstream(&self, session: u64, peer: &Peer<RoleServer>) {
        // Every request calls this: a known session costs a read lock only.
        let known = self
            .downstream
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&session);
        if known {
            return;
        }
        let mut peers = self.downstream.write().unwrap_or_else(|p| p.into_inner());
        // Clients that have gone are forgotten as others arrive.
        peers.retain(|_, p| !p.is_transport_closed());
        peers.entry(session).or_insert_with(|| peer.clone());
    }

    /// Takes the client's roots, sampling and elicitation capabilities as
    /// what upstreams are offered (set before they start).
    pub(crate) fn offer(&self, client: &ClientCapabilities) {
        let mut offered = ClientCapabilities::default();
        offered.roots = client.roots.clone();
        offered.sampling = client.sampling.clone();
        offered.elicitation = client.elicitation.clone();
        *self.offered.write().unwrap_or_else(|p| p.into_inner()) = offered;
    }

    /// The oldest connected client: where an upstream's own request goes
    /// when nothing ties it to one client's call.
    pub(crate) fn downstream(&self) -> Option<Peer<RoleServer>> {
        self.sessions().into_iter().next()
    }

    /// Records that `server`'s request `upstream` serves `caller` until the
    /// returned guard drops.
    pub(crate) fn route_requests(
        self: &Arc<Self>,
        server: &str,
        upstream: RequestId,
        caller: Caller,
    ) -> InFlight {
        let key = (server.to_owned(), upstream);
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), caller);
        InFlight {
            hub: self.clone(),
            key,
        }
    }

    /// The client request that `server`'s own request (arriving with
    /// `origin`, where the transport tells) was made for: the one whose
    /// upstream request's stream it came on (Streamable HTTP), else the
    /// only request in flight to that server (stdio carries no
    /// association); `None` when that is ambiguous.
    fn caller_of(&self, server: &str, origin: Option<&InboundStreamOrigin>) -> Option<Caller> {
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = origin
            && let Some(caller) = in_flight.get(&(server.to_owned(), id.clone()))
        {
            return Some(caller.clone());
        }
        let mut callers = in_flight
            .iter()
            .filter(|((s, _), _)| s == server)
            .map(|(_, c)| c);
        match (callers.next(), callers.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    fn session(&self, session: u64) -> Option<Peer<RoleServer>> {
        self.downstream
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .cloned()
    }

    /// The connected clients, oldest first.
    fn sessions(&self) -> Vec<Peer<RoleServer>> {
        self.downstream
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| !p.is_transport_closed())
            .cloned()
            .collect()
    }

    /// Routes progress for `upstream` (the process keyed `key`) to the
    /// client's `client` token until the returned guard drops.
    pub(crate) fn route_progress(
        self: &Arc<Self>,
        key: String,
        upstream: ProgressToken,
        client: ClientToken,
    ) -> ProgressRoute {
        let token = (key, upstream);
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), client);
        ProgressRoute {
            hub: self.clone(),
            token,
        }
    }

    /// Forgets a finished call's progress.
    pub(crate) fn progress_done(&self, client: &ClientToken) {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(client);
    }

    /// Whether `value` moves the client's progress forward (and records
    /// it if so).
    fn advances(&self, client: &ClientToken, value: f64) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        match sent.get(client) {
            Some(last) if value <= *last => false,
            _ => {
                sent.insert(client.clone(), value);
                true
            }
        }
    }

    /// Tells the client that the gateway's tools, prompts and resources
    /// may have changed (an upstream came, went, or changed its own).
    pub(crate) async fn lists_changed(&self) {
        self.notify(ToolListChangedNotification::default().into())
            .await;
        self.notify(PromptListChangedNotification::default().into())
            .await;
        self.notify(ResourceListChangedNotification::default().into())
            .await;
    }

    /// Sends `notification` to every connected client.
    async fn notify(&self, notification: ServerNotification) {
        for peer in self.sessions() {
            // The client may have gone; a lost notification harms nothing.
            let _ = peer.send_notification(notification.clone()).await;
        }
    }
}

/// Forgets which client an upstream request served when dropped.
pub(crate) struct InFlight {
    hub: Arc<Hub>,
    key: (String, RequestId),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.hub
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Stops routing one request's progress when dropped.
pub(crate) struct ProgressRoute {
    hub: Arc<Hub>,
    token: (String, ProgressToken),
}

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        self.hub
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

/// The client handler of one upstream connection.
pub(crate) struct UpstreamClient {
    pub(crate) server: String,
    /// Credentials to take out of its log messages and progress text, per
    /// its `redact-results` (`None`: pass them as sent).
    pub(crate) secrets: Option<super::scrub::ServerSecrets>,
    pub(crate) hub: Arc<Hub>,
    /// Asks the supervisor to re-read the server's lists (it then tells the
    /// client through [`Hub::lists_changed`]).
    pub(crate) refresh: Arc<Notify>,
    /// Its process's key in the hub's routes (`Upstream::key`).
    pub(crate) key: String,
    /// What its stdout tap read (`progress.rs`): the progress handled
    /// here is counted against it.
    pub(crate) originals: crate::raw_tools::RawTools,
}

fn no_client(what: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("{what}: no MCP client is connected to the gateway"),
        None,
    )
}

fn unexpected(what: &str) -> ErrorData {
    ErrorData::internal_error(format!("{what}: unexpected answer from the client"), None)
}

impl UpstreamClient {
    /// Passes a request the upstream made of its client on to the real
    /// client (roots, sampling, elicitation), and returns its answer: to
    /// the client whose call the upstream is serving, on that call's
    /// stream (an HTTP client may hold no other), else to the oldest
    /// connected client.
    async fn ask_client(
        &self,
        what: &str,
        mut request: ServerRequest,
        context: &RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        let origin = context.extensions.get::<InboundStreamOrigin>();
        let peer = match self.hub.caller_of(&self.key, origin) {
            Some(caller) => {
                request
                    .extensions_mut()
                    .insert(OriginatingRequestId(caller.request));
                self.hub.session(caller.session)
            }
            None => None,
        };
        let peer = peer
            .or_else(|| self.hub.downstream())
            .ok_or_else(|| no_client(what))?;
        // On its own task: rmcp marks a request sent from inside a handler
        // as made for the request being handled — here the upstream's,
        // whose id means nothing to the client's transport — and that mark
        // would replace the one set above.
        let sent = tokio::spawn(async move { peer.send_request(request).await });
        match sent.await {
            Ok(answer) => {
                answer.map_err(|e| ErrorData::internal_error(format!("{what}: {e}"), None))
            }
            Err(e) => Err(ErrorData::internal_error(format!("{what}: {e}"), None)),
        }
    }
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities = self
            .hub
            .offered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ClientConfig::new(
            capabilities,
            Implementation::new("mender-mcp-proxy", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
        match self.ask_client("roots/list", request, &context).await? {
            ClientResult::ListRootsResult(r) => Ok(r),
            _ => Err(unexpected("roots/list")),
        }
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match self
            .ask_client("sampling/createMessage", request, &context)
            .await?
        {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(unexpected("sampling/createMessage")),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        match self
            .ask_client("elicitation/create", request, &context)
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(unexpected("elicitation/create")),
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let upstream_token = params.progress_token.clone();
        let client_token = self
            .hub
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(self.key.clone(), params.progress_token.clone()))
            .cloned();
        // Progress for a request the client did not ask progress for (or
        // that already ended) has nowhere to go.
        // A retried attempt's progress below what the client has seen is
        // dropped, not sent backwards.
        if let Some(client) = client_token
            && self.hub.advances(&client, params.progress)
            && let Some(peer) = self.hub.session(client.session)
        {
            params.progress_token = client.token;
            if let (Some(secrets), Some(message)) = (&self.secrets, params.message.as_mut()) {
                *message = super::scrub::secrets_only(message, &secrets.get());
            }
            let _ = peer
                .send_notification(ProgressNotification::new(params).into())
                .await;
        }
        self.originals.progress.handled(&upstream_token);
    }

    async fn on_logging_message(
        &self,
        mut params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(server = %self.server, level = ?params.level, "upstream log message");
        if let Some(secrets) = &self.secrets {
            params = super::scrub::result_secrets(&secrets.get(), params);
        }
        self.hub
            .notify(LoggingMessageNotification::new(params).into())
            .await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.hub
            .notify(ResourceUpdatedNotification::new(params).into())
            .await;
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    /// A task's status (2025-11-25) goes to the client that created it,
    /// as the server sent it; other unknown notifications are dropped.
    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleClient>,
    ) {
        if notification.method != "notifications/tasks/status" {
            return;
        }
        let task = notification
            .params
            .as_ref()
            .and_then(|p| p.get("taskId"))
            .and_then(serde_json::Value::as_str);
        let Some(route) = task.and_then(|t| self.hub.tasks.get(t)) else {
            return;
        };
        if route.server != self.server {
            return;
        }
        if let Some(peer) = self.hub.session(route.session) {
            let mut notification = notification;
            if let (Some(secrets), Some(params)) = (&self.secrets, notification.params.take()) {
                notification.params = Some(super::scrub::result_secrets(&secrets.get(), params));
            }
            let _ = peer
                .send_notification(ServerNotification::CustomNotification(notification))
                .await;
        }
    }
}
