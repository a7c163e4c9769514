//! Reaching a remote upstream over Streamable HTTP: the HTTP client
//! (rustls, the system's roots plus `ca-file`, `HTTPS_PROXY` honoured,
//! redirects refused), the configured headers, and rmcp's transport,
//! which keeps the `Mcp-Session-Id`. A request the server refuses because
//! it forgot the session fails as `SessionExpired` (rmcp's own re-send is
//! off): the pipeline sees it as one `connect` event tagged
//! `session-expired` and re-issues it only when that is safe, while the
//! upstream starts a new session (`Upstream::renew_session`).
//!
//! The spec says a forgotten session is answered with HTTP 404, but the
//! reference TypeScript servers (server-everything among them) answer 400
//! with a JSON-RPC error that has no `id` ("No valid session ID
//! provided"). rmcp passes that on as a message no request matches, so
//! the request would wait out its whole timeout. `SessionAwareClient`
//! turns it into the 404 it means, and any other id-less error answering
//! a request into an error for that request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use futures_core::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use sse_stream::Sse;

use crate::classify::UpstreamError;
use crate::config::{HttpEndpoint, OAuthSettings};
use crate::oauth::{OAuthClient, SecretSink};

/// The transport for one connection to `endpoint`, without OAuth.
pub(super) fn transport(
    endpoint: &HttpEndpoint,
) -> Result<StreamableHttpClientTransport<SessionAwareClient>, UpstreamError> {
    Ok(StreamableHttpClientTransport::with_client(
        SessionAwareClient(client(endpoint)?),
        config(endpoint)?,
    ))
}

/// The transport for one connection to `endpoint`, whose `oauth` tokens
/// it gets and refreshes (see `crate::oauth`), each registered with `sink`.
pub(super) async fn oauth_transport(
    server: &str,
    endpoint: &HttpEndpoint,
    settings: &OAuthSettings,
    sink: SecretSink,
) -> Result<StreamableHttpClientTransport<OAuthClient<SessionAwareClient>>, UpstreamError> {
    let http = client(endpoint)?;
    let oauth = OAuthClient::new(
        SessionAwareClient(http.clone()),
        server,
        &endpoint.url,
        settings,
        http,
        sink,
    )
    .await
    .map_err(|e| UpstreamError::Spawn(format!("OAuth: {e}")))?;
    Ok(StreamableHttpClientTransport::with_client(
        oauth,
        config(endpoint)?,
    ))
}

/// The HTTP client for `endpoint`: rustls with the system's roots and
/// `ca-file`, `HTTPS_PROXY` honoured, redirects refused.
pub(crate) fn client(endpoint: &HttpEndpoint) -> Result<reqwest::Client, UpstreamError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(endpoint.connect_timeout)
        // A redirect could carry the Authorization header to another
        // origin; a moved server is a config change, said in the error.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &endpoint.ca_file {
        let pem = mender::file::read_text(path, "PEM certificates")
            .map_err(|e| UpstreamError::Spawn(format!("ca-file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            UpstreamError::Spawn(format!(
                "ca-file {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| UpstreamError::Spawn(format!("HTTP client: {e}")))
}

/// rmcp's transport settings for `endpoint`: its URL and headers.
fn config(endpoint: &HttpEndpoint) -> Result<StreamableHttpClientTransportConfig, UpstreamError> {
    let mut headers = HashMap::new();
    for (name, value) in &endpoint.headers {
        // Checked when the config was read.
        let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            return Err(UpstreamError::Spawn(format!(
                "header {name:?} is not valid"
            )));
        };
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.url.as_str());
    config.custom_headers = headers;
    // Not re-sent inside the transport, where no strategy sees it: the
    // expired session reaches the pipeline (see the module header).
    config.reinit_on_expired_session = false;
    Ok(config)
}

/// reqwest's client, with id-less JSON-RPC errors read as what they mean
/// (see the module header).
#[derive(Clone)]
pub(super) struct SessionAwareClient(reqwest::Client);

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;

impl SessionAwareClient {
    fn interpret(posted_request: bool, had_session: bool, result: PostResult) -> PostResult {
        let Ok(StreamableHttpPostResponse::Json(JsonRpcMessage::Error(e), _)) = &result else {
            return result;
        };
        if e.id.is_some() || !posted_request {
            return result;
        }
        if had_session && e.error.message.to_ascii_lowercase().contains("session") {
            return Err(StreamableHttpError::SessionExpired);
        }
        Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
            format!(
                "the server answered with an error for no request: {} {}",
                e.error.code.0, e.error.message
            ),
        )))
    }
}

/// `headers` plus the `traceparent` of a request's `_meta` (see
/// `crate::trace`): an HTTP server's tracing reads the header.
fn with_traceparent(
    message: &ClientJsonRpcMessage,
    mut headers: HashMap<HeaderName, HeaderValue>,
) -> HashMap<HeaderName, HeaderValue> {
    if let Some(tp) = crate::trace::header_of(message) {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
    headers
}

impl StreamableHttpClient for SessionAwareClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let request = matches!(message, JsonRpcMessage::Request(_));
        let had_session = session_id.is_some();
        let custom_headers = with_traceparent(&message, custom_headers);
        let result = self
            .0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await;
        Self::interpret(request, had_session, result)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> PostResult {
        let request = matches!(message, JsonRpcMessage::Request(_));
        let had_session = session_id.is_some();
        let custom_headers = with_traceparent(&message, custom_headers);
        let result = self
            .0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        Self::interpret(request, had_session, result)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<reqwest::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>>
    {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>>
    {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
