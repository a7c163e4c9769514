//! W3C Trace Context through the gateway, so one trace shows client →
//! gateway → each attempt → upstream.
//!
//! The client's `traceparent` (its request's `_meta.traceparent`, else, on
//! the HTTP front, the `traceparent` header) parents the gateway's span for
//! that request (`mcp.request`), under which the core opens `mender.call`
//! and one `mender.attempt` per attempt. Every request sent upstream
//! carries a `traceparent` in its `_meta`, and a remote (HTTP) upstream
//! also gets it as the `traceparent` header: the attempt span's own
//! context when spans are exported, else the client's unchanged, so the
//! upstream's spans still join the client's trace.
//!
//! This crate opens `tracing` spans only and links no OpenTelemetry crate:
//! the exporter (the `mender` command's `otlp` feature) installs a
//! [`SpanContext`] that reads and sets the spans' trace context.

use std::sync::OnceLock;

use http::HeaderValue;
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcMessage};
use rmcp::service::RequestContext;
use tracing::field::Empty;

/// A valid W3C `traceparent`, normalised to version `00`:
/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// Parses a `traceparent` value as the W3C spec says a receiver must:
    /// lower-case hex, ids not all zero, version `ff` invalid, and a
    /// version after `00` read for its first four fields. `None` for
    /// anything else (the request then starts a new trace).
    pub fn parse(value: &str) -> Option<TraceParent> {
        let value = value.trim();
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        let valid = version.len() == 2
            && lower_hex(version)
            && version != "ff"
            && (version != "00" || rest.is_none())
            && trace.len() == 32
            && lower_hex(trace)
            && trace.bytes().any(|b| b != b'0')
            && parent.len() == 16
            && lower_hex(parent)
            && parent.bytes().any(|b| b != b'0')
            && flags.len() == 2
            && lower_hex(flags);
        valid.then(|| TraceParent(format!("00-{trace}-{parent}-{flags}")))
    }

    /// The header (and `_meta`) value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trace id (32 hex digits).
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The parent (span) id (16 hex digits).
    pub fn parent_id(&self) -> &str {
        &self.0[36..52]
    }
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How spans map to W3C trace context in this process: installed by
/// whoever exports the spans (the `mender` command, when OTLP is on).
pub trait SpanContext: Send + Sync + 'static {
    /// Makes `span` (not yet entered) a child of the remote span `parent`.
    fn set_parent(&self, span: &tracing::Span, parent: &TraceParent);
    /// `span`'s own context as a `traceparent`; `None` when the span is
    /// not exported.
    fn traceparent(&self, span: &tracing::Span) -> Option<TraceParent>;
}

static SPAN_CONTEXT: OnceLock<Box<dyn SpanContext>> = OnceLock::new();

/// Installs the process's [`SpanContext`]; `false` (and `bridge` dropped)
/// when one already was.
pub fn set_span_context(bridge: Box<dyn SpanContext>) -> bool {
    SPAN_CONTEXT.set(bridge).is_ok()
}

/// The client's trace context for a request: `_meta.traceparent`, else the
/// HTTP front's `traceparent` header. An invalid value is ignored.
pub(crate) fn of(context: &RequestContext<RoleServer>) -> Option<TraceParent> {
    if let Some(tp) = context.meta.get_traceparent().and_then(TraceParent::parse) {
        return Some(tp);
    }
    let parts = context.extensions.get::<http::request::Parts>()?;
    let header = parts.headers.get("traceparent")?.to_str().ok()?;
    TraceParent::parse(header)
}

/// The gateway's span for one client request forwarded to `server`
/// (`target`: the tool's name, the prompt's; never arguments or URIs),
/// the child of the client's span when it sent one.
pub(crate) fn request_span(
    method: &'static str,
    server: &str,
    target: Option<&str>,
    client: Option<&TraceParent>,
) -> tracing::Span {
    let name = match target {
        Some(t) => format!("{method} {t}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        target: "mender_mcp",
        "mcp.request",
        otel.name = %name,
        otel.kind = "server",
        mcp.method.name = method,
        mcp.server = server,
        gen_ai.tool.name = Empty,
    );
    if method == "tools/call"
        && let Some(t) = target
    {
        span.record("gen_ai.tool.name", t);
    }
    if let (Some(parent), Some(bridge)) = (client, SPAN_CONTEXT.get()) {
        bridge.set_parent(&span, parent);
    }
    span
}

/// The `traceparent` to send upstream from the current span: its own
/// context when spans are exported (the upstream's span is then the
/// attempt's child), else the client's unchanged.
pub(crate) fn outgoing(client: Option<&TraceParent>) -> Option<TraceParent> {
    SPAN_CONTEXT
        .get()
        .and_then(|b| b.traceparent(&tracing::Span::current()))
        .or_else(|| client.cloned())
}

/// Puts [`outgoing`]'s `traceparent` in `request`'s `_meta`.
pub(crate) fn stamp(request: &mut ClientRequest, client: Option<&TraceParent>) {
    if let Some(tp) = outgoing(client) {
        request.get_meta_mut().set_traceparent(tp.as_str());
    }
}

/// The `traceparent` header for a message posted to an HTTP upstream: the
/// one in a request's `_meta`, if valid.
pub(crate) fn header_of(message: &ClientJsonRpcMessage) -> Option<HeaderValue> {
    let JsonRpcMessage::Request(r) = message else {
        return None;
    };
    let tp = TraceParent::parse(r.request.get_meta().get_traceparent()?)?;
    HeaderValue::from_str(tp.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn parses_what_the_spec_allows() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
        // A later version is read for its first four fields.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert_eq!(TraceParent::parse(later).map(|t| t.0), Some(tp.0.clone()));
        for bad in [
            "",
            "00",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
