//! OTLP export of the spans (feature `otlp`): the core's `mender.call` and
//! `mender.attempt`, the gateway's `mcp.request`, over OTLP/HTTP
//! (protobuf) to `--otlp URL` or `OTEL_EXPORTER_OTLP_ENDPOINT` (the
//! standard variables, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and
//! `OTEL_EXPORTER_OTLP_HEADERS` among them, are read by the exporter).
//! Off when neither is set.
//!
//! Every attribute, event and status text passes the same redactor as the
//! log lines before it leaves the process (`RedactingExporter`), so a
//! secret a plugin's reason or a library's event quotes is not exported.
//!
//! The SDK's batch processor exports from its own thread with a plain
//! executor; reqwest needs a tokio reactor, so the HTTP client carries a
//! one-thread runtime of its own (`OwnRuntimeClient`), which also outlives
//! the gateway's runtime for the final flush.

use std::fmt;
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use mender::Redactor;
use mender_mcp::TraceParent;

/// The endpoint spans go to: `--otlp` (a base URL, as the variable's),
/// else the exporter's own reading of the standard variables; `None` when
/// no endpoint is configured.
pub(crate) fn endpoint(flag: Option<&str>) -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match flag {
        Some(url) => Some(format!("{}/v1/traces", url.trim_end_matches('/'))),
        None => set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
            // Read again by the exporter, which appends `/v1/traces` to
            // the generic one.
            .map(|_| String::new()),
    }
}

/// The exporter's provider; dropping it flushes what is left.
pub(crate) struct Otlp {
    provider: SdkTracerProvider,
}

impl Drop for Otlp {
    fn drop(&mut self) {
        // Ends the batch thread after one last export.
        let _ = self.provider.shutdown();
    }
}

/// Builds the exporter (to `endpoint`, or where the variables say when it
/// is empty) and the `tracing` layer that feeds it, and installs the
/// gateway's W3C trace-context bridge.
pub(crate) fn start<S>(
    endpoint: &str,
    redactor: Redactor,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
        Otlp,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let client = OwnRuntimeClient::new()?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary);
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| format!("OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("mender")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(RedactingExporter {
            inner: exporter,
            redactor,
        })
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("mender");
    mender_mcp::set_span_context(Box::new(Bridge));
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false);
    Ok((layer, Otlp { provider }))
}

/// W3C trace context to and from the exported spans.
struct Bridge;

impl mender_mcp::SpanContext for Bridge {
    fn set_parent(&self, span: &tracing::Span, parent: &TraceParent) {
        let carrier = std::collections::HashMap::from([(
            "traceparent".to_owned(),
            parent.as_str().to_owned(),
        )]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }

    fn traceparent(&self, span: &tracing::Span) -> Option<TraceParent> {
        let mut carrier = std::collections::HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        carrier
            .get("traceparent")
            .and_then(|v| TraceParent::parse(v))
    }
}

/// An exporter that redacts every text of a span before `inner` sends it.
#[derive(Debug)]
struct RedactingExporter<E> {
    inner: E,
    redactor: Redactor,
}

impl<E: SpanExporter> SpanExporter for RedactingExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            redact_span(&self.redactor, span);
        }
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Redacts a span's name, attributes, events and status in place.
fn redact_span(r: &Redactor, span: &mut SpanData) {
    span.name = r.redact(&span.name).into();
    redact_attributes(r, &mut span.attributes);
    for event in span.events.events.iter_mut() {
        event.name = r.redact(&event.name).into();
        redact_attributes(r, &mut event.attributes);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status {
        *description = r.redact(description).into();
    }
}

fn redact_attributes(r: &Redactor, attributes: &mut [KeyValue]) {
    for kv in attributes {
        if let Value::String(s) = &kv.value {
            let (_, value) = r.redact_pair(kv.key.as_str(), s.as_str());
            kv.value = Value::from(value);
        } else if let Value::Array(_) = &kv.value {
            // Nothing in mender records arrays; one from elsewhere is
            // replaced rather than exported unread.
            kv.value = Value::from(mender::REDACTED);
        }
    }
}

/// reqwest on a one-thread tokio runtime of its own (see the module doc).
struct OwnRuntimeClient {
    client: reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl OwnRuntimeClient {
    fn new() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("OTLP exporter runtime: {e}"))?;
        let client = reqwest::Client::builder()
            // A collector that does not answer must not hold spans back
            // for long (the SDK's own export timeout is 10 s).
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))?;
        Ok(OwnRuntimeClient {
            client,
            runtime: Arc::new(runtime),
        })
    }
}

impl fmt::Debug for OwnRuntimeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnRuntimeClient")
    }
}

#[async_trait::async_trait]
impl HttpClient for OwnRuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        // The batch thread is no tokio thread, so blocking on our own
        // runtime here is allowed.
        self.runtime.block_on(async move {
            let response = client.execute(request).await?;
            let mut out = Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            let body = response.bytes().await?;
            Ok(out.body(body)?)
        })
    }
}
