//! Credential providers: how the embedder refreshes a service's
//! credentials when a strategy answers `refresh-credentials`. The
//! credentials stay with the embedder; mender and plugins never see them.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, as credential providers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Refreshes a service's credentials when a strategy asks for it. The
/// credentials stay with the embedder: mender never sees them, and neither
/// do plugins.
pub trait CredentialProvider: Send + Sync + 'static {
    /// Refresh the credentials of `service`; the next attempt uses them.
    fn refresh<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

impl<F, Fut> CredentialProvider for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn refresh<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self(service.to_owned()))
    }
}
