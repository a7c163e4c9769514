//! A `tower` [`Layer`]: any tower `Service` (a hyper or reqwest client, a
//! tonic channel, an MCP transport) wrapped so its calls go through a
//! [`Runtime`]'s pipeline.
//!
//! A [`LayerPolicy`] says how the runtime sees the wrapped service's
//! traffic: which operation a request is and whether it is idempotent, how
//! to copy it for another attempt, which responses are failures (an HTTP
//! 503 is a response to the service but a failure to the agent), and what
//! response stands for a fallback answer. [`HttpPolicy`] does this for
//! `http` requests and responses, Retry-After included.
//!
//! When the pipeline gives up after a failed *response*, the caller gets
//! that response, as it would without the layer: the layer adds attempts,
//! it does not invent errors. Errors come back as [`ResilienceError`],
//! carrying the last error of the service, if any, and the whole history.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::api::{AttemptRecord, CallSpec, Payload, ServedBy};
use crate::failure::{Classify, ErrorKind, Failure, HttpError};
use crate::runtime::Runtime;

/// The header [`HttpPolicy`] puts on a response that a fallback plugin
/// answered, naming the plugin.
pub const FALLBACK_HEADER: &str = "x-mender-fallback";

/// How a [`ResilienceLayer`] sees requests and responses.
pub trait LayerPolicy<Req, Resp>: Clone + Send + Sync + 'static {
    /// The call's spec: operation, idempotency, tags (the service name is
    /// the layer's).
    fn spec(&self, service: &str, request: &Req) -> CallSpec;
    /// A copy of the request for another attempt; `None` means the request
    /// cannot be repeated, and the call gets one attempt.
    fn clone_request(&self, request: &Req) -> Option<Req>;
    /// The failure a response stands for, if it is one.
    fn failure(&self, response: &Resp) -> Option<Failure>;
    /// The response standing for a fallback plugin's answer, if this
    /// service's responses can carry one.
    fn fallback(&self, body: String, plugin: &str) -> Option<Resp>;
}

/// [`LayerPolicy`] for `http`: operation `METHOD /path`; GET, HEAD, OPTIONS,
/// PUT, DELETE and TRACE are idempotent (RFC 9110 §9.2.2); 408, 429, 5xx,
/// 401 and 403 are failures, classified like [`HttpError`] (Retry-After
/// honoured); a fallback answer is a 200 with [`FALLBACK_HEADER`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpPolicy;

impl<B, RB> LayerPolicy<Request<B>, Response<RB>> for HttpPolicy
where
    B: Clone,
    RB: From<String>,
{
    fn spec(&self, service: &str, request: &Request<B>) -> CallSpec {
        let m = request.method();
        let idempotent = [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ]
        .contains(m);
        CallSpec::new(service.to_owned(), format!("{m} {}", request.uri().path()))
            .idempotent(idempotent)
    }

    fn clone_request(&self, request: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(request.body().clone())
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        Some(copy)
    }

    fn failure(&self, response: &Response<RB>) -> Option<Failure> {
        let s = response.status();
        let failing = s.is_server_error()
            || [
                StatusCode::REQUEST_TIMEOUT,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
            ]
            .contains(&s);
        failing.then(|| {
            HttpError {
                status: s,
                headers: response.headers().clone(),
                body: String::new(),
            }
            .classify()
        })
    }

    fn fallback(&self, body: String, plugin: &str) -> Option<Response<RB>> {
        let mut response = Response::new(RB::from(body));
        if let Ok(v) = HeaderValue::from_str(plugin) {
            response.headers_mut().insert(FALLBACK_HEADER, v);
        }
        Some(response)
    }
}

/// Wraps services in [`Resilient`].
#[derive(Clone)]
pub struct ResilienceLayer<P = HttpPolicy> {
    runtime: Runtime,
    service: Arc<str>,
    policy: P,
}

impl ResilienceLayer<HttpPolicy> {
    /// A layer whose calls go through `runtime`'s pipeline for `service`,
    /// seen through [`HttpPolicy`].
    pub fn new(runtime: Runtime, service: impl Into<Arc<str>>) -> Self {
        ResilienceLayer {
            runtime,
            service: service.into(),
            policy: HttpPolicy,
        }
    }
}

impl<P> ResilienceLayer<P> {
    /// The same layer with another policy.
    pub fn with_policy<Q>(self, policy: Q) -> ResilienceLayer<Q> {
        ResilienceLayer {
            runtime: self.runtime,
            service: self.service,
            policy,
        }
    }
}

impl<S, P: Clone> Layer<S> for ResilienceLayer<P> {
    type Service = Resilient<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Resilient {
            inner,
            runtime: self.runtime.clone(),
            service: self.service.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// A service whose calls go through a [`Runtime`]'s pipeline.
#[derive(Clone)]
pub struct Resilient<S, P = HttpPolicy> {
    inner: S,
    runtime: Runtime,
    service: Arc<str>,
    policy: P,
}

/// Why a resilient call failed.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {reason}")]
pub struct ResilienceError<E> {
    /// The layer's service.
    pub service: String,
    /// Why the pipeline gave up (which plugin or guardrail).
    pub reason: String,
    /// The class of the last failure.
    pub kind: ErrorKind,
    /// The wrapped service's last error, if the last attempt reached it.
    pub source: Option<E>,
    /// Every attempt.
    pub history: Vec<AttemptRecord>,
}

/// One attempt's failure: the service's error, or a response the policy
/// calls a failure (kept, to hand back if it is the last; `None` when the
/// request could not be repeated and no response exists).
enum AttemptError<E, R> {
    Service(E),
    Response(Option<R>, Failure),
}

impl<E: Classify, R> Classify for AttemptError<E, R> {
    fn classify(&self) -> Failure {
        match self {
            AttemptError::Service(e) => e.classify(),
            AttemptError::Response(_, f) => f.clone(),
        }
    }
}

/// What an attempt or a fallback produced.
enum Answer<R> {
    Upstream(R),
    Fallback(String),
}

impl<R> Payload for Answer<R> {
    /// Responses are not recorded: their bodies are streams the layer must
    /// not consume.
    fn encode(&self) -> Option<String> {
        None
    }

    fn decode(body: &str) -> Result<Self, String> {
        Ok(Answer::Fallback(body.to_owned()))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, P, Req> Service<Req> for Resilient<S, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Classify + Send + 'static,
    S::Response: Send + 'static,
    Req: Send + 'static,
    P: LayerPolicy<Req, S::Response>,
{
    type Response = S::Response;
    type Error = ResilienceError<S::Error>;
    type Future = BoxFuture<Result<S::Response, ResilienceError<S::Error>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt, on a clone: an attempt may come
        // long after this call, and the pipeline may make several.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let (inner, runtime, service, policy) = (
            self.inner.clone(),
            self.runtime.clone(),
            self.service.clone(),
            self.policy.clone(),
        );
        Box::pin(async move {
            let mut spec = policy.spec(&service, &request);
            let template = policy.clone_request(&request);
            if template.is_none() {
                spec = spec.idempotent(false);
            }
            let mut first = Some(request);
            let attempt_policy = policy.clone();
            let result = runtime
                .call(spec, move |_attempt| {
                    let policy = attempt_policy.clone();
                    let request = first
                        .take()
                        .or_else(|| template.as_ref().and_then(|t| policy.clone_request(t)));
                    let mut svc = inner.clone();
                    async move {
                        let Some(request) = request else {
                            let f =
                                Failure::new(ErrorKind::Unknown, "the request cannot be repeated");
                            return Err(AttemptError::Response(None, f));
                        };
                        std::future::poll_fn(|cx| svc.poll_ready(cx))
                            .await
                            .map_err(AttemptError::Service)?;
                        let response = svc.call(request).await.map_err(AttemptError::Service)?;
                        match policy.failure(&response) {
                            Some(f) => Err(AttemptError::Response(Some(response), f)),
                            None => Ok(Answer::Upstream(response)),
                        }
                    }
                })
                .await;
            match result {
                Ok(reply) => match reply.value {
                    Answer::Upstream(r) => Ok(r),
                    Answer::Fallback(body) => {
                        let plugin = match reply.served_by {
                            ServedBy::Fallback { plugin, .. } => plugin,
                            ServedBy::Upstream => String::new(),
                        };
                        policy.fallback(body, &plugin).ok_or_else(|| ResilienceError {
                            service: service.to_string(),
                            reason: format!(
                                "{plugin} answered, but this service's responses cannot carry a fallback"
                            ),
                            kind: ErrorKind::Unknown,
                            source: None,
                            history: reply.history,
                        })
                    }
                },
                Err(e) => match e.last_error {
                    Some(AttemptError::Response(Some(response), _)) => Ok(response),
                    last => Err(ResilienceError {
                        service: e.service,
                        reason: e.reason,
                        kind: e.kind,
                        source: match last {
                            Some(AttemptError::Service(s)) => Some(s),
                            _ => None,
                        },
                        history: e.history,
                    }),
                },
            }
        })
    }
}
