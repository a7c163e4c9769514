//! Where rmcp's `AuthorizationManager` keeps tokens: the token file of
//! the authorization-code grant (written 0600, replaced whole, so a crash
//! mid-write leaves the old tokens), or memory; and on the way in and
//! out, every token registered with the redactor, so that a token fetched
//! or refreshed at run time is redacted like a configured secret.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::transport::auth::{AuthError, CredentialStore, StoredCredentials};

/// Registers a secret learnt at run time (`Runtime::add_secret`).
pub type SecretSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The tokens of one server in a JSON file, readable by its owner only.
pub(crate) struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    pub(crate) fn new(path: &Path) -> TokenFile {
        TokenFile {
            path: path.to_owned(),
        }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> AuthError {
        AuthError::CredentialStoreError(format!("token file {}: {what}: {e}", self.path.display()))
    }
}

#[async_trait::async_trait]
impl CredentialStore for TokenFile {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("cannot read it", e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.error("not tokens mender wrote (run `mender login` again)", e))
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let json =
            serde_json::to_vec_pretty(&credentials).map_err(|e| self.error("cannot encode", e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| self.error("cannot create its directory", e))?;
        // A sibling written then renamed over the file: readers see the
        // old tokens or the new, never half of them.
        let tmp = self.path.with_extension("json.tmp");
        write_private(&tmp, &json).map_err(|e| self.error("cannot write", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error("cannot replace", e))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.error("cannot remove", e))
            }
            _ => Ok(()),
        }
    }
}

/// `path` created with mode 0600 (whatever the umask), truncated, `bytes`
/// written and synced.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // `mode` applies only to a new file; an old one keeps its bits.
    #[cfg(unix)]
    file.set_permissions(
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `dir` and its parents; a directory mender creates is its owner's only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A store whose tokens are registered as secrets whenever they pass.
pub(crate) struct Registering<S> {
    pub(crate) inner: S,
    pub(crate) sink: SecretSink,
}

impl<S> Registering<S> {
    fn register(&self, credentials: &StoredCredentials) {
        use oauth2::TokenResponse as _;
        if let Some(t) = &credentials.token_response {
            (self.sink)(t.access_token().secret());
            if let Some(r) = t.refresh_token() {
                (self.sink)(r.secret());
            }
        }
    }
}

#[async_trait::async_trait]
impl<S: CredentialStore> CredentialStore for Registering<S> {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let loaded = self.inner.load().await?;
        if let Some(c) = &loaded {
            self.register(c);
        }
        Ok(loaded)
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        // Before it is stored, so nothing logs it unredacted in between.
        self.register(&credentials);
        self.inner.save(credentials).await
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.inner.clear().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn credentials(access: &str, refresh: &str) -> StoredCredentials {
        let json = serde_json::json!({
            "client_id": "c",
            "token_response": {
                "access_token": access,
                "token_type": "bearer",
                "refresh_token": refresh,
                "expires_in": 60,
            },
            "token_received_at": 1,
        });
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn the_token_file_is_private_and_every_token_is_registered() {
        let dir = std::env::temp_dir().join(format!("mender-tokens-{}", std::process::id()));
        let path = dir.join("nested/server.json");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink_seen = seen.clone();
        let store = Registering {
            inner: TokenFile::new(&path),
            sink: Arc::new(move |s: &str| sink_seen.lock().unwrap().push(s.to_owned())),
        };
        assert!(store.load().await.unwrap().is_none());
        store.save(credentials("at-1111", "rt-2222")).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = store.load().await.unwrap().unwrap();
        assert_eq!(loaded.client_id, "c");
        assert_eq!(
            *seen.lock().unwrap(),
            ["at-1111", "rt-2222", "at-1111", "rt-2222"]
        );
        std::fs::write(&path, "{ not json").unwrap();
        let e = store.load().await.unwrap_err().to_string();
        assert!(
            e.contains("server.json") && e.contains("mender login"),
            "{e}"
        );
        store.clear().await.unwrap();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
