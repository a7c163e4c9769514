//! Forwarding one client request to its upstream through the service's
//! strategy pipeline: `tools/call` (retried only when safe), `resources/read`
//! and `prompts/get` (reads, always safe to retry).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    MetaObject, ServerResult, Tool,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::classify::UpstreamError;
use super::client::Caller;
use super::scrub;
use super::trace::{self, TraceParent};
use super::upstream::Upstream;
use mender::{AttemptRecord, CallError, CallSpec, Payload, Reply, Runtime, ServedBy, Step};

/// The `_meta` key under which the gateway explains a call that did not
/// succeed at the first attempt (attempts, what each decided, who served).
pub const CALL_META_KEY: &str = "io.mender/call";

/// One call counted in its upstream's `in_flight` until dropped (answered,
/// failed, or cancelled by the client).
struct InFlight<'a>(&'a Upstream);

impl<'a> InFlight<'a> {
    fn enter(up: &'a Upstream) -> Self {
        up.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(up)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A tool's answer as a pipeline payload: successful answers are recorded
/// for cached fallbacks; a fallback's text becomes a successful result
/// (or is taken whole when it is a recorded `CallToolResult`).
struct ToolAnswer(CallToolResult);

impl Payload for ToolAnswer {
    fn encode(&self) -> Option<String> {
        serde_json::to_string(&self.0).ok()
    }
    fn decode(body: &str) -> Result<Self, String> {
        match serde_json::from_str::<CallToolResult>(body) {
            Ok(r) if !r.content.is_empty() || r.structured_content.is_some() => Ok(ToolAnswer(r)),
            _ => Ok(ToolAnswer(CallToolResult::success(vec![
                ContentBlock::text(body),
            ]))),
        }
    }
}

/// Whether a tool is safe to call twice: the server says it only reads or
/// is idempotent (`readOnlyHint`/`idempotentHint`), or `vouched` (the
/// config's `retry-tools`) names it.
pub fn tool_is_idempotent(tool: Option<&Tool>, name: &str, vouched: &[String]) -> bool {
    let annotated = tool
        .and_then(|t| t.annotations.as_ref())
        .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
    annotated || vouched.iter().any(|t| t == name)
}

/// A short digest of the arguments, so a cached fallback answers the same
/// question, not merely the same tool.
fn arguments_key(name: &str, params: &CallToolRequestParams) -> String {
    let args = params
        .arguments
        .as_ref()
        .map(|a| Value::Object(a.clone()).to_string())
        .unwrap_or_default();
    let digest = Sha256::digest(args.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("tools/call:{name}:{hex}")
}

/// Calls a tool through the pipeline of the upstream's service. Never an
/// `Err`: every failure is a tool result the model can read, carrying the
/// attempt history under [`CALL_META_KEY`].
pub(crate) async fn call_tool(
    rt: &Runtime,
    up: &Arc<Upstream>,
    backups: &[Arc<Upstream>],
    tool: Option<&Tool>,
    params: CallToolRequestParams,
    caller: Caller,
    client_trace: Option<&TraceParent>,
) -> CallToolResult {
    let name = params.name.to_string();
    let idempotent = tool_is_idempotent(tool, &name, &up.spec.retry_tools);
    let mut spec = CallSpec::new(up.spec.service.clone(), format!("tools/call:{name}"))
        .idempotent(idempotent)
        .tag("mcp-server", up.name())
        .tag("tool", name.clone())
        .result_key(arguments_key(&name, &params));
    let rotates = super::failover::rotates(up, backups);
    if rotates {
        // The server, its other replicas, then its `failover` list: what a
        // strategy may route an attempt to (contract 0.2).
        spec = spec.upstreams(super::failover::upstream_names(up, backups));
    }
    let timeout = up.spec.call_timeout;
    up.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let in_flight = InFlight::enter(up);
    let span = trace::request_span("tools/call", up.name(), Some(&name), client_trace);
    let outcome = rt
        .call(spec, |attempt| {
            let mut request = ClientRequest::CallToolRequest(CallToolRequest::new(params.clone()));
            // Called inside the attempt's span: the upstream's span is its child.
            trace::stamp(&mut request, client_trace);
            let caller = caller.clone();
            let to = super::failover::routed(up, backups, &name, attempt.upstream).clone();
            to.attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // With backups or replicas, each attempt's end may eject its
            // process for the primary's `eject-for`; without, nothing to
            // record.
            let eject_for = rotates.then_some(up.spec.eject_for);
            async move {
                let limit = attempt.timeout.map_or(timeout, |t| t.min(timeout));
                let answer = match to.request(request, limit, Some(&caller)).await {
                    Ok(ServerResult::CallToolResult(r)) if r.is_error == Some(true) => {
                        Err(UpstreamError::Tool(Box::new(r)))
                    }
                    Ok(ServerResult::CallToolResult(r)) => Ok(ToolAnswer(r)),
                    Ok(other) => Err(UpstreamError::Other(format!(
                        "tools/call answered with something else: {}",
                        serde_json::to_string(&other).unwrap_or_default()
                    ))),
                    Err(e) => Err(e),
                };
                if let Some(eject_for) = eject_for {
                    super::failover::record(&to, eject_for, answer.as_ref().map(|_| ()));
                }
                answer
            }
        })
        .instrument(span)
        .await;
    drop(in_flight);
    if let Some(token) = caller.progress_token() {
        up.hub.progress_done(&token);
    }
    let result = match outcome {
        Ok(reply) => answered(&up.spec.service, reply),
        Err(e) => {
            up.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let kind = e.kind.as_str().to_owned();
            let r = gave_up(up, e);
            up.call_failed(
                &format!("tools/call {name}: {}", super::classify::tool_text(&r)),
                &kind,
            );
            r
        }
    };
    scrub::result(&up.rt, &up.secrets.get(), up.spec.redact_results, result)
}

fn answered(service: &str, reply: Reply<ToolAnswer>) -> CallToolResult {
    let served_by = match &reply.served_by {
        ServedBy::Upstream => "upstream".to_owned(),
        ServedBy::Fallback { plugin, .. } => format!("fallback:{plugin}"),
    };
    let fallback = reply.is_fallback();
    let mut result = reply.value.0;
    if !reply.history.is_empty() || fallback {
        annotate(&mut result, service, &served_by, &reply.history, None);
    }
    result
}

fn gave_up(up: &Upstream, e: CallError<UpstreamError>) -> CallToolResult {
    let service = &up.spec.service;
    match e.last_error {
        // The server's own failure answer is the most useful thing to hand
        // back; the history says what mender tried first.
        Some(UpstreamError::Tool(mut r)) => {
            annotate(&mut r, service, "upstream", &e.history, Some(&e.reason));
            *r
        }
        other => {
            let cause = other.map_or_else(|| e.kind.to_string(), |o| o.to_string());
            let text = format!(
                "mender: the call to `{}` on MCP server `{}` failed after {} attempt(s) ({}): {}",
                e.operation.trim_start_matches("tools/call:"),
                up.name(),
                e.history.len(),
                e.reason,
                cause
            );
            // The cause quotes the server (its JSON-RPC error message),
            // which may hold a credential it was given.
            let text = scrub::text(&up.rt, &up.secrets.get(), &text);
            let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
            annotate(&mut r, service, "none", &e.history, Some(&e.reason));
            r
        }
    }
}

fn annotate(
    result: &mut CallToolResult,
    service: &str,
    served_by: &str,
    history: &[AttemptRecord],
    gave_up: Option<&str>,
) {
    let attempts: Vec<Value> = history.iter().map(attempt_json).collect();
    let mut meta = result
        .meta
        .take()
        .unwrap_or_else(|| MetaObject(Default::default()));
    meta.0.insert(
        CALL_META_KEY.to_owned(),
        json!({
            "service": service,
            "served_by": served_by,
            "attempts": attempts,
            "gave_up": gave_up,
        }),
    );
    result.meta = Some(meta);
}

fn attempt_json(a: &AttemptRecord) -> Value {
    let (step, delay, reason) = match &a.step {
        Step::Retry { delay, .. } => ("retry", Some(millis(*delay)), None),
        Step::RefreshCredentials { .. } => ("refresh-credentials", None, None),
        Step::Fallback { .. } => ("fallback", None, None),
        Step::Fail { reason, .. } => ("fail", None, Some(reason.clone())),
        Step::Hedged => ("hedged", None, None),
        Step::Cancelled { .. } => ("cancelled", None, None),
    };
    json!({
        "attempt": a.attempt,
        "kind": a.kind.as_str(),
        "status": a.status,
        "message": a.message,
        "tags": a.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "took_ms": millis(a.took),
        "upstream": a.upstream,
        "step": step,
        "delay_ms": delay,
        "reason": reason,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Forwards a read (`resources/read`, `prompts/get`) through the pipeline
/// as an idempotent call, in a span named for `operation` and `target`;
/// its error is the last upstream failure, as a JSON-RPC error for the
/// client.
pub(crate) async fn read(
    rt: &Runtime,
    up: &Arc<Upstream>,
    operation: &'static str,
    key: &str,
    request: ClientRequest,
    client_trace: Option<&TraceParent>,
    target: Option<&str>,
) -> Result<ServerResult, rmcp::ErrorData> {
    let span = trace::request_span(operation, up.name(), target, client_trace);
    let spec = CallSpec::new(up.spec.service.clone(), operation.to_owned())
        .idempotent(true)
        .tag("mcp-server", up.name())
        .result_key(format!("{operation}:{key}"));
    let timeout = up.spec.call_timeout;
    let rotates = !up.replicas.is_empty();
    up.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let in_flight = InFlight::enter(up);
    let outcome = rt
        .call(spec, |attempt| {
            let mut request = request.clone();
            trace::stamp(&mut request, client_trace);
            // A read goes round the replicas as a tool call does.
            let to = super::failover::target(up, &[], operation).clone();
            to.attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let eject_for = rotates.then_some(up.spec.eject_for);
            async move {
                let limit = attempt.timeout.map_or(timeout, |t| t.min(timeout));
                let answer = to.request(request, limit, None).await;
                if let Some(eject_for) = eject_for {
                    super::failover::record(&to, eject_for, answer.as_ref().map(|_| ()));
                }
                answer.map(mender::Json)
            }
        })
        .instrument(span)
        .await;
    drop(in_flight);
    match outcome {
        Ok(reply) => Ok(scrub::result(
            &up.rt,
            &up.secrets.get(),
            up.spec.redact_results,
            reply.value.0,
        )),
        Err(e) => {
            up.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let error = match e.last_error {
                Some(UpstreamError::Rpc(data)) => data,
                other => rmcp::ErrorData::internal_error(
                    format!(
                        "mender: {} on MCP server `{}` failed after {} attempt(s) ({}): {}",
                        e.operation,
                        up.name(),
                        e.history.len(),
                        e.reason,
                        other.map_or_else(|| e.kind.to_string(), |o| o.to_string())
                    ),
                    None,
                ),
            };
            up.call_failed(
                &format!("{operation} {key}: {}", error.message),
                e.kind.as_str(),
            );
            Err(scrub::error(&up.rt, &up.secrets.get(), error))
        }
    }
}
