//! JWTs as bearer tokens on the HTTP front (`mender mcp-proxy --listen
//! --jwt-jwks …`): a token is let in when it is a JWT signed by a key of
//! the configured JWKS, issued by the configured issuer for the configured
//! audience, and not expired (`exp` is required; 60 s of clock skew).
//!
//! The JWKS is a file, read at start, or a URL, fetched at start and again
//! when a token names a key the set lacks (a rotation), at most once per
//! [`REFETCH_AFTER`]. Only asymmetric algorithms are accepted: a JWKS holds
//! public keys, and a token "signed" with HMAC under one of them could be
//! made by anybody who can read the set. Validation is the `jsonwebtoken`
//! crate's.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation, decode, decode_header};

/// A key server is asked again for a key it did not have at most this
/// often, so tokens naming unknown keys cannot make the gateway hammer it.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// How long fetching the JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// A JWKS file.
    File(PathBuf),
    /// A JWKS URL (http or https).
    Url(String),
}

impl JwksSource {
    /// A URL when `text` starts with `http://` or `https://`, else a path.
    pub fn parse(text: &str) -> JwksSource {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_owned())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }

    fn shown(&self) -> String {
        match self {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
        }
    }
}

/// Validates inbound JWTs against a JWKS.
pub struct JwtAuth {
    source: JwksSource,
    issuer: String,
    audience: String,
    keys: RwLock<JwkSet>,
    /// When the URL was last fetched.
    fetched: Mutex<Instant>,
    http: reqwest::Client,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("jwks", &self.source.shown())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtAuth {
    /// Reads (or fetches) the JWKS; an error says which and why.
    pub async fn load(
        source: JwksSource,
        issuer: String,
        audience: String,
    ) -> Result<JwtAuth, String> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err("this build has no JWT crypto provider".into());
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let keys = fetch(&source, &http).await?;
        if keys.keys.is_empty() {
            return Err(format!("JWKS {} holds no keys", source.shown()));
        }
        Ok(JwtAuth {
            source,
            issuer,
            audience,
            keys: RwLock::new(keys),
            fetched: Mutex::new(Instant::now()),
            http,
        })
    }

    /// `Ok` when `token` is a valid JWT for this gateway, else why not
    /// (never quoting the token).
    pub async fn check(&self, token: &str) -> Result<(), String> {
        let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(format!(
                "algorithm {:?} is not accepted (a JWKS holds public keys)",
                header.alg
            ));
        }
        let key = match self.key(header.kid.as_deref()) {
            Some(key) => key,
            None if self.may_refetch() => {
                let fresh = fetch(&self.source, &self.http).await?;
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                self.key(header.kid.as_deref())
                    .ok_or("no key in the JWKS matches the token's `kid`")?
            }
            None => return Err("no key in the JWKS matches the token's `kid`".into()),
        };
        let key = DecodingKey::from_jwk(&key).map_err(|e| format!("JWKS key: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        decode::<serde_json::Value>(token, &key, &validation)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The key `kid` names, or the only key when the token names none.
    fn key(&self, kid: Option<&str>) -> Option<jsonwebtoken::jwk::Jwk> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    /// Whether the URL may be fetched again now (and if so, counts it).
    fn may_refetch(&self) -> bool {
        if !matches!(self.source, JwksSource::Url(_)) {
            return false;
        }
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        if fetched.elapsed() < REFETCH_AFTER {
            return false;
        }
        *fetched = Instant::now();
        true
    }
}

/// The JWKS from `source`.
async fn fetch(source: &JwksSource, http: &reqwest::Client) -> Result<JwkSet, String> {
    let text = match source {
        JwksSource::File(path) => mender::file::read_text(path, "a JWKS (JSON)")
            .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?,
        JwksSource::Url(url) => {
            let fetched = async { http.get(url).send().await?.error_for_status()?.text().await };
            fetched
                .await
                .map_err(|e| format!("--jwt-jwks {url}: {}", crate::classify::error_chain(&e)))?
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| format!("--jwt-jwks {}: not a JWKS: {e}", source.shown()))
}
