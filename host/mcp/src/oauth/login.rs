//! The authorization-code grant with PKCE (rmcp's `AuthorizationManager`
//! builds the URL, keeps the verifier and exchanges the code): a loopback
//! listener on 127.0.0.1 catches the redirect, the user opens the URL we
//! print — or, headless (`mender call --oauth-headless`, for a test
//! authorization server that approves at once), mender fetches it itself
//! and follows the redirect to its own listener, the same path a browser
//! takes.

use std::time::Duration;

use rmcp::transport::auth::{
    AuthError, AuthorizationCallback, AuthorizationManager, OAuthClientConfig,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::config::OAuthSettings;

/// How long a person has to sign in.
const INTERACTIVE_WAIT: Duration = Duration::from_secs(300);
/// A headless sign-in is a few local requests; more means it is stuck.
const HEADLESS_WAIT: Duration = Duration::from_secs(30);
/// What the client name a registered client (RFC 7591) shows users.
const CLIENT_NAME: &str = "mender";

/// Who opens the authorization URL.
pub(crate) enum Opener<'a> {
    /// A person: the URL is handed to this (printed), and we wait.
    Person(&'a (dyn Fn(&str) + Send + Sync)),
    /// mender itself, following redirects up to its own listener.
    Headless(reqwest::Client),
}

/// A one-request HTTP listener on 127.0.0.1 at a port the system picks,
/// where the authorization server sends the browser back.
pub(crate) struct Loopback {
    listener: TcpListener,
    pub(crate) redirect_uri: String,
}

impl Loopback {
    pub(crate) async fn bind() -> Result<Loopback, AuthError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
            AuthError::InternalError(format!("cannot listen on 127.0.0.1 for the redirect: {e}"))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::InternalError(e.to_string()))?
            .port();
        Ok(Loopback {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// The redirect's full URL, once a request for `/callback` arrives
    /// (anything else — a favicon — is answered 404 and waited past).
    async fn callback(&self) -> Result<String, AuthError> {
        loop {
            let (mut socket, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| AuthError::InternalError(format!("redirect listener: {e}")))?;
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            // The request line is all we need; a request head over 16 KiB
            // is not a browser coming back.
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            let target = line
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split(' ').next())
                .unwrap_or("");
            let found = target.starts_with("/callback");
            let (status, body) = if found {
                ("200 OK", "mender: signed in. You can close this tab.\n")
            } else {
                ("404 Not Found", "not here\n")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.shutdown().await;
            if found {
                let base = self.redirect_uri.trim_end_matches("/callback");
                return Ok(format!("{base}{target}"));
            }
        }
    }
}

/// Signs in to the server `m` was set up for (its metadata set): the
/// configured client, or one registered now (RFC 7591) when none is
/// configured; the tokens land in `m`'s credential store.
pub(crate) async fn sign_in(
    m: &mut AuthorizationManager,
    settings: &OAuthSettings,
    loopback: &Loopback,
    open: &Opener<'_>,
) -> Result<(), AuthError> {
    let scopes = if settings.scopes.is_empty() {
        m.select_initial_scopes(&[]).await
    } else {
        settings.scopes.clone()
    };
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let config = match &settings.client_id {
        Some(id) => {
            let mut c = OAuthClientConfig::new(id.clone(), loopback.redirect_uri.clone())
                .with_scopes(scopes.clone());
            if let Some(secret) = &settings.client_secret {
                c = c.with_client_secret(secret.clone());
            }
            c
        }
        None => {
            m.register_client(CLIENT_NAME, &loopback.redirect_uri, &scope_refs)
                .await?
        }
    };
    m.configure_client(config)?;
    let url = m.get_authorization_url(&scope_refs).await?;
    authorize_at(m, &url, loopback, open).await
}

/// Sends the user (or mender itself) to `url`, waits for the redirect and
/// exchanges its code for tokens.
pub(crate) async fn authorize_at(
    m: &AuthorizationManager,
    url: &str,
    loopback: &Loopback,
    open: &Opener<'_>,
) -> Result<(), AuthError> {
    let (callback, wait) = match open {
        Opener::Person(show) => {
            show(url);
            (
                tokio::time::timeout(INTERACTIVE_WAIT, loopback.callback()).await,
                INTERACTIVE_WAIT,
            )
        }
        Opener::Headless(client) => {
            let (callback, followed) = tokio::join!(
                tokio::time::timeout(HEADLESS_WAIT, loopback.callback()),
                tokio::time::timeout(HEADLESS_WAIT, client.get(url).send()),
            );
            if let Ok(Err(e)) = followed {
                return Err(AuthError::AuthorizationFailed(format!(
                    "following the authorization URL: {e}"
                )));
            }
            (callback, HEADLESS_WAIT)
        }
    };
    let callback = callback.map_err(|_| {
        AuthError::AuthorizationFailed(format!(
            "no redirect came back to {} within {wait:?}",
            loopback.redirect_uri
        ))
    })??;
    if let Some(refusal) = refusal(&callback) {
        return Err(AuthError::AuthorizationFailed(refusal));
    }
    let cb = AuthorizationCallback::from_redirect_url(&callback)?;
    m.exchange_code_for_token_with_issuer(&cb.code, &cb.csrf_token, cb.issuer.as_deref())
        .await?;
    Ok(())
}

/// The authorization server's `error` (and description) in a redirect.
fn refusal(callback: &str) -> Option<String> {
    let url = url::Url::parse(callback).ok()?;
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let error = get("error")?;
    Some(match get("error_description") {
        Some(d) => format!("the authorization server refused: {error} ({d})"),
        None => format!("the authorization server refused: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_loopback_listener_returns_the_redirect_and_skips_other_paths() {
        let loopback = Loopback::bind().await.unwrap();
        let base = loopback
            .redirect_uri
            .trim_end_matches("/callback")
            .to_owned();
        let browser = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let miss = client
                .get(format!("{base}/favicon.ico"))
                .send()
                .await
                .unwrap();
            assert_eq!(miss.status(), 404);
            let hit = client
                .get(format!("{base}/callback?code=c-1&state=s-2"))
                .send()
                .await
                .unwrap();
            assert_eq!(hit.status(), 200);
        });
        let url = loopback.callback().await.unwrap();
        browser.await.unwrap();
        assert!(url.ends_with("/callback?code=c-1&state=s-2"), "{url}");
        assert_eq!(
            refusal("http://127.0.0.1:1/callback?error=access_denied&error_description=no")
                .as_deref(),
            Some("the authorization server refused: access_denied (no)")
        );
        assert_eq!(refusal("http://127.0.0.1:1/callback?code=x"), None);
    }
}
