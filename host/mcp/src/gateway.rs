//! The gateway as the client sees it: one MCP server whose tools, prompts
//! and resources are the union of the upstreams', each request routed to
//! the upstream that owns the name or URI.

// Roots, sampling, logging and resources/subscribe are deprecated by the
// 2026-07-28 protocol (SEP-2577) but are what handshake-era servers use
// today; the gateway forwards them as they are.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult, ClientRequest,
    CompleteRequest, CompleteRequestParams, CompleteResult, ContentBlock, CustomRequest,
    CustomResult, ErrorData, GetPromptRequest, GetPromptRequestParams, GetPromptResponse,
    Implementation, InitializeRequestParams, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    Reference, ServerCapabilities, ServerConfig, ServerResult, SetLevelRequest,
    SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};

use super::client::{Caller, Hub};
use super::forward;
use super::trace;
use super::upstream::{Catalog, Upstream, UpstreamState};
use mender::Runtime;

/// The downstream-facing MCP server.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) rt: Runtime,
    pub(crate) upstreams: Arc<Vec<Arc<Upstream>>>,
    pub(crate) hub: Arc<Hub>,
    /// Tool collisions already warned about.
    pub(crate) warned: Arc<std::sync::Mutex<HashSet<String>>>,
    /// The upstreams' first start, run once, on the client's `initialize`.
    pub(crate) launched: Arc<tokio::sync::OnceCell<Result<(), super::ProxyError>>>,
    /// Which client this handle serves (0 on stdio; one per HTTP session).
    pub(crate) session: u64,
    /// Whether clients may speak 2026-07-28 (`[mcp] stateless-clients`).
    pub(crate) stateless_clients: bool,
    /// The live per-client processes of every session (see `per_client`).
    pub(crate) per_client: Arc<super::per_client::PerClient>,
    /// This session's own processes, in `upstreams` in place of their
    /// servers' shared entries (HTTP front, `share = "per-client"`).
    pub(crate) own: Option<Arc<super::per_client::SessionServers>>,
}

impl Gateway {
    /// Upstreams whose offerings are listed: ready ones, and required ones
    /// between restarts (their calls wait in the pipeline and are retried);
    /// an optional server that is not ready is left out until it recovers.
    /// A server with replicas offers what its first ready replica lists.
    pub(crate) fn listed(&self) -> impl Iterator<Item = (&Arc<Upstream>, Arc<Catalog>)> {
        self.upstreams.iter().filter_map(|u| {
            let lister = u.lister();
            let ready = lister
                .health(|h| matches!(h.state, UpstreamState::Ready | UpstreamState::Unresponsive));
            if !ready && u.spec.optional {
                return None;
            }
            lister.catalog().map(|c| (u, c))
        })
    }

    pub(crate) fn owner<F: Fn(&Catalog) -> bool>(
        &self,
        owns: F,
    ) -> Option<(&Arc<Upstream>, Arc<Catalog>)> {
        self.listed().find(|(_, c)| owns(c))
    }

    /// The upstream for a resource URI: the one listing it, else the one
    /// whose template's fixed prefix matches, else the only one with
    /// resources at all.
    fn resource_owner(&self, uri: &str) -> Option<&Arc<Upstream>> {
        if let Some((u, _)) = self.owner(|c| c.resources.iter().any(|r| r.uri == uri)) {
            return Some(u);
        }
        if let Some((u, _)) = self.owner(|c| {
            c.templates.iter().any(|t| {
                let prefix = t.uri_template.split('{').next().unwrap_or_default();
                !prefix.is_empty() && uri.starts_with(prefix)
            })
        }) {
            return Some(u);
        }
        // From the catalogue, which outlives a restart: a server between
        // processes still owns its resources (the request waits for it).
        let with_resources: Vec<_> = self
            .listed()
            .filter(|(_, c)| c.caps.resources.is_some())
            .collect();
        (with_resources.len() == 1).then(|| with_resources[0].0)
    }

    /// A listed tool's definition as its upstream sent it (a per-client
    /// server's, as any of its processes sent it: the HTTP front asks the
    /// shared handle).
    pub(crate) fn raw_tool(&self, name: &str) -> Option<serde_json::Value> {
        let up = match self.owner(|c| c.tools.iter().any(|t| t.name == name)) {
            Some((up, _)) => up.clone(),
            None => self.per_client.lister_of(name)?,
        };
        let mut raw = up
            .lister()
            .originals
            .tools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(up.own_tool_name(name)?)
            .cloned()?;
        // Under the name the client knows it by (the server's `prefix`).
        raw["name"] = name.into();
        Some(raw)
    }

    /// The one upstream that could own a name no server lists: a request
    /// for it is forwarded there to answer as it would directly. `None`
    /// when none or several could.
    fn sole<F: Fn(&Catalog) -> bool>(&self, could: F) -> Option<&Arc<Upstream>> {
        let mut candidates = self.listed().filter(|(_, c)| could(c)).map(|(u, _)| u);
        let first = candidates.next()?;
        candidates.next().is_none().then_some(first)
    }

    fn unknown(what: &str, name: &str) -> ErrorData {
        ErrorData::invalid_params(
            format!("no connected MCP server offers {what} `{name}`"),
            None,
        )
    }
}

fn dedup_by<T>(items: impl Iterator<Item = T>, key: impl Fn(&T) -> String) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(key(i))).collect()
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let mut caps = ServerCapabilities::default();
        let mut instructions = Vec::new();
        for up in self.upstreams.iter() {
            let Some(conn) = up.lister().connection() else {
                continue;
            };
            let c = &conn.info.capabilities;
            caps.tools = caps.tools.take().or_else(|| c.tools.clone());
            caps.prompts = caps.prompts.take().or_else(|| c.prompts.clone());
            caps.resources = caps.resources.take().or_else(|| c.resources.clone());
            caps.completions = caps.completions.take().or_else(|| c.completions.clone());
            #[allow(deprecated)]
            {
                caps.logging = caps.logging.take().or_else(|| c.logging.clone());
            }
            if let Some(i) = &conn.info.instructions {
                instructions.push(i.clone());
            }
        }
        // Servers come and go (an optional one recovers, a crashed one
        // restarts with new tools): the client must be told to re-list.
        let mut tools = caps.tools.take().unwrap_or_default();
        tools.list_changed = Some(true);
        caps.tools = Some(tools);
        let mut info = ServerConfig::new(caps);
        info.server_info = Implementation::new("mender-mcp-proxy", env!("CARGO_PKG_VERSION"));
        if !instructions.is_empty() {
            info.instructions = Some(instructions.join("\n\n"));
        }
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.enter(&context, None).await?;
        self.warn_collisions();
        let tools = self.listed().flat_map(|(_, c)| c.tools.clone());
        Ok(ListToolsResult::with_all_items(dedup_by(tools, |t| {
            t.name.to_string()
        })))
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.enter(&context, None).await?;
        let name = request.name.to_string();
        let owner = self
            .owner(|c| c.tools.iter().any(|t| t.name == name))
            .map(|(u, c)| (u, c.tools.iter().find(|t| t.name == name).cloned()));
        let Some((up, tool)) = owner else {
            // A tool of an optional server that is down: say so plainly
            // rather than "unknown tool".
            if let Some(up) = self.upstreams.iter().find(|u| {
                u.catalog()
                    .is_some_and(|c| c.tools.iter().any(|t| t.name == name))
            }) {
                let error = up
                    .health(|h| h.last_error.clone())
                    .map(|e| e.0)
                    .unwrap_or_default();
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "mender: MCP server `{}` (optional) is down: {error}",
                    up.name()
                ))])
                .into());
            }
            // A tool no server lists (a typo, one it hides): the one server
            // that could own it answers, as it would directly.
            if let Some(up) = self.sole(|c| c.caps.tools.is_some())
                && let Some(own) = up.own_tool_name(&name)
                && up.spec.offers_tool(own)
            {
                request.name = own.to_owned().into();
                let req = ClientRequest::CallToolRequest(CallToolRequest::new(request));
                return match direct(up, req, &context).await {
                    Ok(ServerResult::CallToolResult(r)) => Ok(super::scrub::result(
                        &up.rt,
                        &up.secrets.get(),
                        up.spec.redact_results,
                        r,
                    )
                    .into()),
                    Ok(_) => Err(ErrorData::internal_error(
                        "tools/call: unexpected answer upstream",
                        None,
                    )),
                    Err(e) => Err(e),
                };
            }
            return Err(Self::unknown("tool", &name));
        };
        if let Some(own) = up.own_tool_name(&name) {
            request.name = own.to_owned().into();
        }
        let caller = Caller {
            session: self.session,
            request: context.id.clone(),
            progress: context.meta.get_progress_token(),
        };
        let backups = super::failover::backups_of(up, &self.upstreams);
        let tp = trace::of(&context);
        let call = forward::call_tool(
            &self.rt,
            up,
            &backups,
            tool.as_ref(),
            request,
            caller,
            tp.as_ref(),
        );
        tokio::select! {
            result = call => Ok(result.into()),
            // Dropping the call cancels it upstream as well.
            () = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled by the client", None)),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.enter(&context, None).await?;
        self.warn_collisions();
        let prompts = self.listed().flat_map(|(_, c)| c.prompts.clone());
        Ok(ListPromptsResult::with_all_items(dedup_by(prompts, |p| {
            p.name.clone()
        })))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.enter(&context, None).await?;
        let name = request.name.clone();
        let (up, _) = self
            .owner(|c| c.prompts.iter().any(|p| p.name == name))
            .ok_or_else(|| Self::unknown("prompt", &name))?;
        // A cached answer must be to the same prompt with the same arguments.
        let key = format!(
            "{name}:{}",
            serde_json::to_string(&request.arguments).unwrap_or_default()
        );
        let req = ClientRequest::GetPromptRequest(GetPromptRequest::new(request));
        let (tp, target) = (trace::of(&context), Some(name.as_str()));
        match forward::read(&self.rt, up, "prompts/get", &key, req, tp.as_ref(), target).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(ErrorData::internal_error(
                "prompts/get: unexpected answer upstream",
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.enter(&context, None).await?;
        self.warn_collisions();
        let resources = self.listed().flat_map(|(_, c)| c.resources.clone());
        Ok(ListResourcesResult::with_all_items(dedup_by(
            resources,
            |r| r.uri.clone(),
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.enter(&context, None).await?;
        self.warn_collisions();
        let templates = self.listed().flat_map(|(_, c)| c.templates.clone());
        Ok(ListResourceTemplatesResult::with_all_items(dedup_by(
            templates,
            |t| t.uri_template.clone(),
        )))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.enter(&context, None).await?;
        let uri = request.uri.clone();
        let up = self
            .resource_owner(&uri)
            .ok_or_else(|| Self::unknown("resource", &uri))?;
        let req = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request));
        // No URI in the span: it may carry a credential (`?key=…`).
        let tp = trace::of(&context);
        match forward::read(&self.rt, up, "resources/read", &uri, req, tp.as_ref(), None).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(ErrorData::internal_error(
                "resources/read: unexpected answer upstream",
                None,
            )),
        }
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.enter(&context, None).await?;
        let up = self
            .resource_owner(&request.uri)
            .ok_or_else(|| Self::unknown("resource", &request.uri))?;
        let req = ClientRequest::SubscribeRequest(SubscribeRequest::new(request));
        direct(up, req, &context).await.map(|_| ())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.enter(&context, None).await?;
        let up = self
            .resource_owner(&request.uri)
            .ok_or_else(|| Self::unknown("resource", &request.uri))?;
        let req = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(request));
        direct(up, req, &context).await.map(|_| ())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.enter(&context, None).await?;
        let completes = |c: &Catalog| c.caps.completions.is_some();
        let up = match &request.r#ref {
            Reference::Prompt(p) => self
                .owner(|c| c.prompts.iter().any(|x| x.name == p.name))
                .map(|(u, _)| u)
                .or_else(|| self.sole(completes)),
            Reference::Resource(r) => self.resource_owner(&r.uri).or_else(|| self.sole(completes)),
            _ => None,
        };
        let Some(up) = up else {
            let (what, name) = match &request.r#ref {
                Reference::Prompt(p) => ("prompt", p.name.clone()),
                Reference::Resource(r) => ("resource", r.uri.clone()),
                _ => ("reference", String::new()),
            };
            return Err(Self::unknown(what, &name));
        };
        let req = ClientRequest::CompleteRequest(CompleteRequest::new(request));
        match direct(up, req, &context).await? {
            ServerResult::CompleteResult(r) => Ok(super::scrub::result(
                &up.rt,
                &up.secrets.get(),
                up.spec.redact_results,
                r,
            )),
            _ => Err(ErrorData::internal_error(
                "completion/complete: unexpected answer upstream",
                None,
            )),
        }
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.enter(&context, None).await?;
        let client_trace = trace::of(&context);
        // Every process: each replica logs on its own.
        for up in self.upstreams.iter().flat_map(|u| u.replica_set()) {
            let logs = up
                .connection()
                .is_some_and(|c| c.info.capabilities.logging.is_some());
            if logs {
                let mut req = ClientRequest::SetLevelRequest(SetLevelRequest::new(request.clone()));
                trace::stamp(&mut req, client_trace.as_ref());
                // One server refusing a level must not fail the others.
                if let Err(e) = up.request(req, up.spec.call_timeout, None).await {
                    tracing::warn!(server = %up.name(), "logging/setLevel: {e}");
                }
            }
        }
        Ok(())
    }

    /// Starts the upstreams now that the client's capabilities are known,
    /// so each is offered its roots, sampling and elicitation from its
    /// first `initialize` on (never restarted to learn them), and answers
    /// with their combined capabilities once they are up.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        self.enter(&context, Some(&request.capabilities)).await?;
        self.launch_own().await?;
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.hub.set_downstream(self.session, &context.peer);
    }

    async fn on_roots_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleServer>,
    ) {
        for up in self.upstreams.iter().flat_map(|u| u.replica_set()) {
            if let Some(conn) = up.connection() {
                // A server that missed it re-asks for roots on its next need.
                let _ = conn.peer.notify_roots_list_changed().await;
            }
        }
    }

    /// The handshake era, and with `[mcp] stateless-clients` the
    /// 2026-07-28 one too (a client of that era discovers; rmcp checks each
    /// request's `_meta`). The upstreams are spoken to in their own era
    /// (`protocol` per server) whatever the client's.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        let newest = if self.stateless_clients {
            &ProtocolVersion::V_2026_07_28
        } else {
            &ProtocolVersion::V_2025_11_25
        };
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(newest))
    }

    /// Task requests (2025-11-25) reach the gateway untyped; see `tasks`.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        self.forward_untyped(request, context).await
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, ErrorData> {
        self.discovered(&context).await
    }
}

/// Sends `request` to `up` outside the pipeline (no retries), with the
/// client's trace context; a failure is the client's JSON-RPC error.
async fn direct(
    up: &Arc<Upstream>,
    mut request: ClientRequest,
    context: &RequestContext<RoleServer>,
) -> Result<ServerResult, ErrorData> {
    trace::stamp(&mut request, trace::of(context).as_ref());
    up.request(request, up.spec.call_timeout, None)
        .await
        .map_err(|e| as_rpc_error(up, e))
}

/// An upstream failure as the JSON-RPC error the client gets, redacted.
pub(crate) fn as_rpc_error(up: &Upstream, e: super::classify::UpstreamError) -> ErrorData {
    let error = match e {
        super::classify::UpstreamError::Rpc(data) => data,
        other => ErrorData::internal_error(format!("mender: {other}"), None),
    };
    super::scrub::error(&up.rt, &up.secrets.get(), error)
}
