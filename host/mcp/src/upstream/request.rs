//! Asking an upstream one request on the client's behalf: waiting out a
//! restart, the per-attempt timeout, progress routing, cancellation, and
//! telling a hung server from a slow tool.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientRequest, DiscoverRequest,
    DiscoverRequestParams, PingRequest, ResultType, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::{Peer, RoleClient};

use super::{Connection, Upstream, UpstreamState};
use crate::classify::UpstreamError;

impl Upstream {
    /// Sends one request and waits for its answer, within `timeout`. When
    /// `progress` is given, the upstream's progress for it reaches the
    /// client under the client's token. Dropping the future (the client
    /// cancelled, the pipeline's deadline passed) cancels the request
    /// upstream too.
    pub(crate) async fn request(
        self: &Arc<Self>,
        request: ClientRequest,
        timeout: Duration,
        caller: Option<&crate::client::Caller>,
    ) -> Result<ServerResult, UpstreamError> {
        let began = tokio::time::Instant::now();
        let conn = self.wait_ready(timeout).await.ok_or_else(|| {
            let (state, error) = self.health(|h| (h.state, h.last_error.clone()));
            let state = format!("{state:?}").to_lowercase();
            UpstreamError::NotReady(match error {
                Some((e, _)) => format!(
                    "`{}` still {state} after {timeout:?}; last: {e}",
                    self.name()
                ),
                None => format!("`{}` still {state} after {timeout:?}", self.name()),
            })
        })?;
        let timeout = timeout.saturating_sub(began.elapsed());
        let handle = conn
            .peer
            .send_cancellable_request(request, PeerRequestOptions::with_timeout(timeout))
            .await?;
        let _route = caller.and_then(|c| c.progress_token()).map(|client| {
            self.hub
                .route_progress(self.key(), handle.progress_token.clone(), client)
        });
        let _in_flight = caller.map(|c| {
            self.hub
                .route_requests(&self.key(), handle.id.clone(), c.clone())
        });
        let guard = CancelOnDrop {
            peer: Some(conn.peer.clone()),
            id: handle.id.clone(),
            upstream: self.clone(),
        };
        let progress_token = handle.progress_token.clone();
        let result = handle.await_response().await;
        guard.disarm();
        if _route.is_some() {
            // Progress the server sent just before its answer is forwarded
            // on its own task; let it go first, as it would without us.
            self.originals.progress.settle(&progress_token).await;
        }
        let result = result.map_err(UpstreamError::from).map(complete);
        match &result {
            Err(UpstreamError::Timeout(_)) => self.check_hung(),
            // A remote server's connection failing is no proof the server
            // is gone (one request's TCP connection was reset); a ping
            // tells, and an unanswered one starts a new session.
            Err(UpstreamError::Closed(_)) if self.spec.http.is_some() => self.check_hung(),
            Err(UpstreamError::Closed(_)) => {}
            // The server forgot the session (a deploy, a restart): the
            // next attempt, if the pipeline makes one, goes to a new one.
            Err(UpstreamError::SessionExpired(_)) => self.renew_session(&conn),
            // Any answer at all: the server is not hung.
            _ => self.answered(),
        }
        result
    }

    /// Starts a new session in place of `expired`, once however many
    /// requests found it expired: the connection is withdrawn at once (so
    /// new requests wait for the next one), then the supervisor ends the
    /// old session and connects again, without a restart delay.
    fn renew_session(&self, expired: &Arc<Connection>) {
        let previous = self.conn.compare_and_swap(expired, None::<Arc<Connection>>);
        if !previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, expired)) {
            return;
        }
        tracing::info!(server = %self.name(), "the server forgot its MCP session; starting a new one");
        *self
            .restart_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some(("because its session expired".to_owned(), false));
        self.restart_now.notify_one();
    }

    /// The live connection, waiting up to `limit` for a (re)starting server:
    /// a call that arrives while its server restarts after a crash should
    /// be served by the new process, not fail at once.
    async fn wait_ready(&self, limit: Duration) -> Option<Arc<Connection>> {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if let Some(conn) = self.connection() {
                    return Some(conn);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// After a timed-out call: if the server does not answer a ping either,
    /// it is hung, not slow, and (unless configured otherwise) restarted.
    fn check_hung(self: &Arc<Self>) {
        if self.checking_hang.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(conn) = this.connection() {
                // The 2026-07-28 protocol has no `ping`; `server/discover`
                // is as cheap and any live server answers it.
                let probe = if crate::config::is_stateless(&conn.info.protocol_version) {
                    ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams {}))
                } else {
                    ClientRequest::PingRequest(PingRequest::default())
                };
                let ping = conn.peer.send_request_with_option(
                    probe,
                    PeerRequestOptions::with_timeout(this.spec.ping_timeout),
                );
                let answered = match ping.await {
                    Ok(handle) => handle.await_response().await.is_ok(),
                    Err(_) => false,
                };
                tracing::info!(
                    server = %this.name(),
                    answered,
                    "a call went unanswered; pinged the server to tell a hang from a slow tool"
                );
                if answered {
                    this.answered();
                } else if !this.spec.restart_on_hang {
                    let why = format!(
                        "unresponsive: a call timed out and a ping got no answer within {:?} \
                         (restart-on-hang = false: left running)",
                        this.spec.ping_timeout
                    );
                    tracing::warn!(server = %this.name(), "MCP server {why}");
                    this.set_state(UpstreamState::Unresponsive, Some((why, "timeout")));
                } else {
                    this.set_state(
                        UpstreamState::Unresponsive,
                        Some((
                            "hung: a call timed out and a ping got no answer".into(),
                            "timeout",
                        )),
                    );
                    *this
                        .restart_reason
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some((
                        format!(
                            "was hung (a call failed and a ping got no answer within {:?}); {}",
                            this.spec.ping_timeout,
                            if this.spec.http.is_some() {
                                "reconnecting"
                            } else {
                                "killed it"
                            }
                        ),
                        true,
                    ));
                    this.restart_now.notify_one();
                }
            }
            this.checking_hang.store(false, Ordering::Release);
        });
    }
}

/// Sends `notifications/cancelled` for a request whose answer nobody will
/// wait for any more, and checks the server for a hang: the request was
/// abandoned because a timer fired (the host's attempt timeout often beats
/// the SDK's own, set to the same limit) or the client gave up waiting,
/// and either may mean the server stopped answering. A ping to a healthy
/// server costs little.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: rmcp::model::RequestId,
    upstream: Arc<Upstream>,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.peer = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            let notification = CancelledNotification::new(CancelledNotificationParam::new(
                Some(self.id.clone()),
                Some("cancelled by the caller".into()),
            ));
            tokio::spawn(async move {
                let _ = peer.send_notification(notification.into()).await;
            });
            self.upstream.check_hung();
        }
    }
}

/// A handshake-era server's result, marked `resultType: "complete"` as the
/// 2026-07-28 protocol requires of every result (an absent one means the
/// same; rmcp takes the mark off again for a handshake-era client).
fn complete(mut result: ServerResult) -> ServerResult {
    let result_type = match &mut result {
        ServerResult::CompleteResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ListPromptsResult(r) => &mut r.result_type,
        ServerResult::ListResourcesResult(r) => &mut r.result_type,
        ServerResult::ListResourceTemplatesResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::ListToolsResult(r) => &mut r.result_type,
        ServerResult::CallToolResult(r) => &mut r.result_type,
        _ => return result,
    };
    result_type.get_or_insert(ResultType::COMPLETE);
    result
}
