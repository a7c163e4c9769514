//! OAuth for remote upstreams (`[mcp.servers.NAME.oauth]`), as the MCP
//! authorization spec describes it, on rmcp's `auth`: discovery from the
//! first 401's `WWW-Authenticate` (`resource_metadata`, RFC 9728) to the
//! authorization server's metadata (RFC 8414 / OIDC), the client-
//! credentials and authorization-code grants, and refreshes. mender adds
//! what a gateway needs around them:
//!
//! * every token obtained is registered with the redactor (`store.rs`);
//! * a token the server refuses is replaced and the request sent again,
//!   once: rmcp's `AuthClient` refreshes with the refresh token (rotation
//!   kept); for client credentials, which have none, a new token is bought;
//! * a 403 `insufficient_scope` steps up once per request: client
//!   credentials ask again with the union of the scopes; the
//!   authorization-code grant signs in again headless, or else says which
//!   scope `mender login` must ask for;
//! * a grant that needs a person (no tokens, a refused refresh token) ends
//!   in an error that says to run `mender login SERVER`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use futures_core::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationMetadata, ClientCredentialsConfig,
    InMemoryCredentialStore,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;
use tokio::sync::Mutex;

use crate::config::{Grant, OAuthSettings};

mod login;
mod store;

pub use store::SecretSink;

use login::{Loopback, Opener};
use store::{Registering, TokenFile};

/// Step-ups one connection may make: the spec asks clients to stop
/// before an authorization loop (the conformance suite allows 3).
const MAX_STEP_UPS: u32 = 3;

/// An rmcp auth manager for the server at `url`, its OAuth requests made
/// with `http` (the upstream's client: its CA, proxy and timeouts), its
/// tokens kept where `settings` say and registered with `sink`.
async fn manager(
    url: &str,
    settings: &OAuthSettings,
    http: &reqwest::Client,
    sink: SecretSink,
) -> Result<AuthorizationManager, AuthError> {
    let mut m = AuthorizationManager::new(url).await?;
    m.with_client(http.clone())?;
    match &settings.token_file {
        Some(path) if settings.grant == Grant::AuthorizationCode => {
            m.set_credential_store(Registering {
                inner: TokenFile::new(path),
                sink,
            })
        }
        _ => m.set_credential_store(Registering {
            inner: InMemoryCredentialStore::new(),
            sink,
        }),
    }
    Ok(m)
}

/// The authorization server's metadata: at the configured place, or
/// discovered from the server (starting at its 401 challenge).
async fn metadata(
    m: &AuthorizationManager,
    settings: &OAuthSettings,
    http: &reqwest::Client,
    challenge: Option<&str>,
) -> Result<AuthorizationMetadata, AuthError> {
    if let Some(endpoint) = &settings.token_endpoint {
        let mut metadata = AuthorizationMetadata::default();
        metadata.token_endpoint = endpoint.clone();
        // Required by the type, never used by client credentials.
        metadata.authorization_endpoint = endpoint.clone();
        return Ok(metadata);
    }
    if let Some(server) = &settings.authorization_server {
        let mut at = AuthorizationManager::new(server.as_str()).await?;
        at.with_client(http.clone())?;
        return Ok(at.resolve_metadata().await?.metadata);
    }
    Ok(m.resolve_metadata_from_challenge(challenge).await?.metadata)
}

/// The error that tells the user what to do when only a person can help.
fn login_needed(server: &str, why: &str) -> AuthError {
    AuthError::AuthorizationFailed(format!(
        "mender: `{server}` needs a sign-in ({why}): run `mender login {server}`"
    ))
}

/// What one upstream's OAuth needs besides rmcp's manager.
struct Plan {
    server: String,
    settings: OAuthSettings,
    http: reqwest::Client,
    /// Metadata read and the client configured (after the first 401, or
    /// at once when the authorization server is configured).
    prepared: AtomicBool,
    /// The token file held tokens at connect: rmcp sends them from the
    /// first request, so the client must be ready to refresh them before
    /// any 401 (discovery then starts at the well-known addresses).
    stored_tokens: bool,
    step_ups: AtomicU32,
    /// Scopes a 403 asked for beyond the configured ones (client
    /// credentials ask with them from then on).
    extra_scopes: std::sync::Mutex<Vec<String>>,
    /// Headless only: the redirect listener, kept so a step-up sends the
    /// browser back to the redirect URI the client was configured with.
    loopback: Mutex<Option<Loopback>>,
}

/// A Streamable HTTP client that gets, refreshes and sends OAuth tokens
/// (see the module header) around `C`.
#[derive(Clone)]
pub(crate) struct OAuthClient<C> {
    auth: AuthClient<C>,
    plan: Arc<Plan>,
}

impl<C: StreamableHttpClient + Sync> OAuthClient<C> {
    pub(crate) async fn new(
        inner: C,
        server: &str,
        url: &str,
        settings: &OAuthSettings,
        http: reqwest::Client,
        sink: SecretSink,
    ) -> Result<Self, AuthError> {
        let m = manager(url, settings, &http, sink).await?;
        Ok(OAuthClient {
            auth: AuthClient::new(inner, m),
            plan: Arc::new(Plan {
                server: server.to_owned(),
                settings: settings.clone(),
                http,
                prepared: AtomicBool::new(false),
                stored_tokens: settings.grant == Grant::AuthorizationCode
                    && settings
                        .token_file
                        .as_deref()
                        .is_some_and(std::path::Path::is_file),
                step_ups: AtomicU32::new(0),
                extra_scopes: std::sync::Mutex::new(Vec::new()),
                loopback: Mutex::new(None),
            }),
        })
    }

    fn client_credentials(&self) -> ClientCredentialsConfig {
        let s = &self.plan.settings;
        let mut scopes = s.scopes.clone();
        for extra in self
            .plan
            .extra_scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if !scopes.contains(extra) {
                scopes.push(extra.clone());
            }
        }
        ClientCredentialsConfig::ClientSecret {
            client_id: s.client_id.clone().unwrap_or_default(),
            client_secret: s.client_secret.clone().unwrap_or_default(),
            scopes,
            resource: Some(s.resource.clone()),
        }
    }

    /// Reads the metadata and configures the client; for the
    /// authorization-code grant, loads the tokens `mender login` stored
    /// (or signs in now, headless).
    async fn prepare(
        &self,
        m: &mut AuthorizationManager,
        challenge: Option<&str>,
    ) -> Result<(), AuthError> {
        let s = &self.plan.settings;
        let metadata = metadata(m, s, &self.plan.http, challenge).await?;
        m.set_metadata(metadata);
        match s.grant {
            Grant::ClientCredentials => {
                let config = self.client_credentials();
                m.validate_client_credentials_metadata(&config)?;
                m.configure_client_credentials(&config)
            }
            Grant::AuthorizationCode => {
                if m.initialize_from_store().await? {
                    // The store names only the client id; a confidential
                    // client refreshes with its secret too.
                    if let (Some(id), Some(secret)) = (&s.client_id, &s.client_secret) {
                        let config = rmcp::transport::auth::OAuthClientConfig::new(
                            id.clone(),
                            self.plan.settings.resource.clone(),
                        )
                        .with_client_secret(secret.clone());
                        m.configure_client(config)?;
                    }
                    return Ok(());
                }
                if !s.headless {
                    return Err(login_needed(&self.plan.server, "no stored tokens"));
                }
                // Kept for a later step-up, which must come back to the
                // redirect URI the client was configured with.
                let mut kept = self.plan.loopback.lock().await;
                let loopback = match kept.take() {
                    Some(l) => l,
                    None => Loopback::bind().await?,
                };
                let opener = Opener::Headless(self.plan.http_following());
                let signed_in = login::sign_in(m, s, &loopback, &opener).await;
                *kept = Some(loopback);
                signed_in
            }
        }
    }

    /// The token to send: `None` before the first 401 (the request goes
    /// out without one, and the server's challenge starts discovery).
    async fn token(&self) -> Result<Option<String>, AuthError> {
        let mut m = self.auth.auth_manager.lock().await;
        if !self.plan.prepared.load(Ordering::Acquire) {
            let s = &self.plan.settings;
            let configured = s.token_endpoint.is_some() || s.authorization_server.is_some();
            if !configured && !self.plan.stored_tokens {
                return Ok(None);
            }
            self.prepare(&mut m, None).await?;
            self.plan.prepared.store(true, Ordering::Release);
        }
        self.current(&m).await.map(Some)
    }

    /// A valid token from the store (refreshed by rmcp when near expiry),
    /// or a new one bought with the client's credentials.
    async fn current(&self, m: &AuthorizationManager) -> Result<String, AuthError> {
        match m.get_access_token().await {
            Ok(t) => Ok(t),
            Err(AuthError::AuthorizationRequired) => self.renew(m).await,
            Err(e) => Err(e),
        }
    }

    /// A new token without the refresh token: client credentials buy
    /// one; the authorization-code grant needs a person.
    async fn renew(&self, m: &AuthorizationManager) -> Result<String, AuthError> {
        use oauth2::TokenResponse as _;
        match self.plan.settings.grant {
            Grant::ClientCredentials => Ok(m
                .exchange_client_credentials(&self.client_credentials())
                .await?
                .access_token()
                .secret()
                .clone()),
            Grant::AuthorizationCode => Err(login_needed(
                &self.plan.server,
                "the server refused the token and it could not be refreshed",
            )),
        }
    }

    /// After a 401 that rmcp's own refresh did not cure: discovery on
    /// the first, else a new token.
    async fn after_challenge(
        &self,
        sent: Option<&str>,
        challenge: &str,
    ) -> Result<String, AuthError> {
        let mut m = self.auth.auth_manager.lock().await;
        if !self.plan.prepared.load(Ordering::Acquire) {
            self.prepare(&mut m, Some(challenge)).await?;
            self.plan.prepared.store(true, Ordering::Release);
            return self.current(&m).await;
        }
        // A request refused at the same time may have got a new token
        // already.
        if let Ok(t) = m.get_access_token().await
            && Some(t.as_str()) != sent
        {
            return Ok(t);
        }
        self.renew(&m).await
    }

    /// After a 403 `insufficient_scope` for `required`: a token with the
    /// scopes so far plus those, within [`MAX_STEP_UPS`].
    async fn step_up(&self, required: Option<&str>) -> Result<String, AuthError> {
        let server = &self.plan.server;
        let Some(required) = required.filter(|r| !r.trim().is_empty()) else {
            return Err(AuthError::AuthorizationFailed(format!(
                "mender: `{server}` refused the token for insufficient scope without saying which"
            )));
        };
        if self.plan.step_ups.fetch_add(1, Ordering::AcqRel) >= MAX_STEP_UPS {
            return Err(AuthError::InsufficientScope {
                required_scope: required.to_owned(),
                upgrade_url: None,
            });
        }
        let m = self.auth.auth_manager.lock().await;
        match self.plan.settings.grant {
            Grant::ClientCredentials => {
                {
                    let mut extra = self
                        .plan
                        .extra_scopes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    for scope in required.split_whitespace() {
                        if !extra.iter().any(|s| s == scope) {
                            extra.push(scope.to_owned());
                        }
                    }
                }
                self.renew(&m).await
            }
            Grant::AuthorizationCode if self.plan.settings.headless => {
                let url = m.request_scope_upgrade(required).await?;
                let loopback = self.plan.loopback.lock().await;
                let Some(loopback) = loopback.as_ref() else {
                    return Err(login_needed(
                        server,
                        &format!("it needs scope `{required}`"),
                    ));
                };
                login::authorize_at(
                    &m,
                    &url,
                    loopback,
                    &Opener::Headless(self.plan.http_following()),
                )
                .await?;
                m.get_access_token().await
            }
            Grant::AuthorizationCode => Err(AuthError::AuthorizationFailed(format!(
                "mender: `{server}` needs scope `{required}`: add it to `scopes` in [mcp.servers.{server}.oauth] and run `mender login {server}`"
            ))),
        }
    }

    /// Runs `call` with a token, handling the server's 401 and 403 once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, StreamableHttpError<C::Error>>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<C::Error>>>,
    {
        let token = self.token().await?;
        let retry_with = match call(token.clone()).await {
            Err(StreamableHttpError::AuthRequired(challenge)) => {
                self.after_challenge(token.as_deref(), &challenge.www_authenticate_header)
                    .await?
            }
            Err(StreamableHttpError::InsufficientScope(e)) => {
                self.step_up(e.required_scope.as_deref()).await?
            }
            done => return done,
        };
        match call(Some(retry_with)).await {
            Err(StreamableHttpError::AuthRequired(_)) => Err(StreamableHttpError::Auth(
                AuthError::AuthorizationFailed(format!(
                    "mender: `{}` refused a token it had just issued; check the client's grants and `resource`",
                    self.plan.server
                )),
            )),
            other => other,
        }
    }
}

impl Plan {
    /// A client like the upstream's that follows redirects (up to the
    /// loopback listener), for a headless sign-in.
    fn http_following(&self) -> reqwest::Client {
        // The upstream's client refuses redirects; the authorization
        // server's redirect to our listener is the point here. Built the
        // same way otherwise (`ca-file` roots are not carried over: a
        // headless sign-in is for test servers on 127.0.0.1).
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap_or_else(|_| self.http.clone())
    }
}

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for OAuthClient<C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.with_token(|token| {
            self.auth.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.with_token(|token| {
            self.auth.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.with_token(|token| {
            self.auth.delete_session(
                uri.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.with_token(|token| {
            self.auth.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.with_token(|token| {
            self.auth.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

/// `mender login SERVER`: signs in to `spec`'s server with the
/// authorization-code grant, `show` handed the URL to open; the tokens
/// are stored in its token file. Returns where.
pub async fn login(
    spec: &crate::ServerSpec,
    show: &(dyn Fn(&str) + Send + Sync),
) -> Result<std::path::PathBuf, String> {
    let server = spec.name.as_str();
    let (Some(endpoint), Some(settings)) = (
        spec.http.as_ref(),
        spec.http.as_ref().and_then(|h| h.oauth.as_ref()),
    ) else {
        return Err(format!(
            "`{server}` has no [mcp.servers.{server}.oauth]: there is nothing to sign in to"
        ));
    };
    let url = endpoint.url.as_str();
    let client = crate::upstream::http::client(endpoint).map_err(|e| e.to_string())?;
    let fail = |e: AuthError| format!("signing in to `{server}`: {e}");
    if settings.grant != Grant::AuthorizationCode {
        return Err(format!(
            "`{server}` uses grant = \"client_credentials\": mender gets its tokens itself, there is nothing to sign in to"
        ));
    }
    let Some(path) = settings.token_file.clone() else {
        return Err(format!(
            "`{server}` has no token file to store the sign-in in"
        ));
    };
    // Nothing is registered with a redactor here: the tokens go to the
    // file, and nothing logs them.
    let mut m = manager(url, settings, &client, Arc::new(|_: &str| {}))
        .await
        .map_err(fail)?;
    // The server's own challenge first (its `resource_metadata`), as a
    // client's first request would get it.
    let challenge = client
        .get(url)
        .header(http::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .ok()
        .filter(|r| r.status() == http::StatusCode::UNAUTHORIZED)
        .and_then(|r| {
            r.headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let metadata = metadata(&m, settings, &client, challenge.as_deref())
        .await
        .map_err(fail)?;
    m.set_metadata(metadata);
    let loopback = Loopback::bind().await.map_err(fail)?;
    login::sign_in(&mut m, settings, &loopback, &Opener::Person(show))
        .await
        .map_err(fail)?;
    Ok(path)
}
