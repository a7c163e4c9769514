//! When the upstreams start, for a client of either era: the 2025-11-25
//! handshake (`initialize`, whose capabilities the upstreams are offered)
//! or the 2026-07-28 protocol, which has no handshake — its client sends
//! `server/discover` or goes straight to its first request, with its
//! capabilities in that request's `_meta`. Whichever comes first starts
//! them, once.

use rmcp::model::{ClientCapabilities, DiscoverResult};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler as _};

use super::gateway::Gateway;

impl Gateway {
    /// Notes the client (so notifications can reach it) and starts the
    /// upstreams if this is the first request of any client, offering them
    /// `capabilities` (the client's roots, sampling and elicitation).
    pub(crate) async fn enter(
        &self,
        context: &RequestContext<RoleServer>,
        capabilities: Option<&ClientCapabilities>,
    ) -> Result<(), ErrorData> {
        self.hub.set_downstream(self.session, &context.peer);
        if !self.launched.initialized() {
            let from_meta = context.meta.client_capabilities();
            if let Some(caps) = capabilities.or(from_meta.as_ref()) {
                self.hub.offer(caps);
            }
        }
        // Shared processes only: a session's own start at its `initialize`.
        let upstreams: Vec<_> = self
            .upstreams
            .iter()
            .filter(|u| u.session.is_none() && !self.per_client.applies_to(u))
            .cloned()
            .collect();
        let launched = self
            .launched
            .get_or_init(|| async move { super::launch(&upstreams).await })
            .await;
        match launched {
            Ok(()) => Ok(()),
            Err(e) => Err(ErrorData::internal_error(format!("mender: {e}"), None)),
        }
    }

    /// The answer to a 2026-07-28 client's `server/discover`: the same
    /// capabilities and instructions an `initialize` gets.
    pub(crate) async fn discovered(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        self.enter(context, None).await?;
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    /// Stops every upstream process, shared and per-client, and waits
    /// until each is reaped (the gateway is shutting down).
    pub(crate) async fn stop_all(&self) {
        let mut stops = tokio::task::JoinSet::new();
        for up in self
            .upstreams
            .iter()
            .cloned()
            .chain(self.per_client.unreaped())
        {
            stops.spawn(async move { up.stop().await });
        }
        while stops.join_next().await.is_some() {}
    }
}
