//! `[mcp.servers.NAME.oauth]`: a remote server whose tokens mender gets
//! and refreshes itself, as the MCP authorization spec describes (the
//! flow is in `upstream/oauth.rs`).
//!
//! ```toml
//! [mcp.servers.jira]
//! url = "https://mcp.example.com/mcp"
//!
//! [mcp.servers.jira.oauth]
//! grant = "client_credentials"          # or "authorization_code" (`mender login jira`)
//! client-id = "mender-gateway"
//! client-secret = "${JIRA_CLIENT_SECRET}"
//! scopes = ["read", "write"]
//! # authorization-server = "https://sso.example.com"  # instead of discovery
//! # token-endpoint = "https://sso.example.com/token"  # client_credentials only
//! # resource = "https://mcp.example.com/mcp"          # RFC 8707; default: `url`
//! # token-file = "tokens/jira.json"                   # authorization_code
//! ```

use std::path::{Path, PathBuf};

use mender::config::{ConfigError, Source};
use serde::Deserialize;
use toml::Spanned;

use super::http::expand;

/// How mender gets its first token.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// A person signs in once (`mender login SERVER`); mender keeps the
    /// refresh token in `token-file` and refreshes from then on.
    #[default]
    AuthorizationCode,
    /// Machine to machine: the client's own id and secret buy each token.
    ClientCredentials,
}

/// The `oauth` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct OAuthToml {
    #[serde(default)]
    grant: Grant,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    authorization_server: Option<String>,
    token_endpoint: Option<String>,
    resource: Option<String>,
    token_file: Option<String>,
}

/// How to get tokens for one remote server, checked.
#[derive(Clone, PartialEq)]
pub struct OAuthSettings {
    /// The grant mender uses.
    pub grant: Grant,
    /// A pre-registered client; without one (authorization code only)
    /// the client registers itself where the server offers it (RFC 7591).
    pub client_id: Option<String>,
    /// The pre-registered client's secret (a registered secret).
    pub client_secret: Option<String>,
    /// Scopes to ask for; empty: what the server's challenge or metadata
    /// suggests.
    pub scopes: Vec<String>,
    /// Where to find the authorization server's metadata, instead of
    /// discovering it from the MCP server.
    pub authorization_server: Option<String>,
    /// The token endpoint itself (client credentials), skipping discovery.
    pub token_endpoint: Option<String>,
    /// The RFC 8707 resource indicator sent with client-credentials
    /// token requests (the authorization-code flow sends the one the
    /// server's metadata names).
    pub resource: String,
    /// Where the tokens of the authorization-code grant are kept (0600);
    /// `None` keeps them in memory only (a one-shot `mender call URL`).
    pub token_file: Option<PathBuf>,
    /// Follow the authorization URL without a person (a test
    /// authorization server that approves at once): set by `mender call
    /// --oauth-headless`, never by a config file.
    pub headless: bool,
}

/// Never the secret.
impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// The checked settings of `[mcp.servers.NAME.oauth]` (at `at`) for the
/// server at `url`; the client secret is added to `secrets`.
pub(super) fn settings(
    name: &str,
    raw: &Spanned<OAuthToml>,
    url: &str,
    src: &Source<'_>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
) -> Result<OAuthSettings, ConfigError> {
    let fail = |message: String| {
        src.error(
            raw.span().start,
            format!("mcp server `{name}`: oauth: {message}"),
        )
    };
    let o = raw.get_ref();
    let mut read = Vec::new();
    let client_id = o
        .client_id
        .as_deref()
        .map(|v| expand(v, env, &mut read).map_err(|e| fail(format!("client-id: {e}"))))
        .transpose()?;
    let client_secret = o
        .client_secret
        .as_deref()
        .map(|v| expand(v, env, secrets).map_err(|e| fail(format!("client-secret: {e}"))))
        .transpose()?;
    if let Some(s) = &client_secret {
        secrets.push(s.clone());
    }
    if client_secret.is_some() && client_id.is_none() {
        return Err(fail(
            "`client-secret` needs the `client-id` it belongs to".into(),
        ));
    }
    if o.grant == Grant::ClientCredentials && (client_id.is_none() || client_secret.is_none()) {
        return Err(fail(
            "grant = \"client_credentials\" needs `client-id` and `client-secret`".into(),
        ));
    }
    for (key, value) in [
        ("authorization-server", &o.authorization_server),
        ("token-endpoint", &o.token_endpoint),
        ("resource", &o.resource),
    ] {
        if let Some(v) = value
            && !(v.starts_with("https://") || v.starts_with("http://"))
        {
            return Err(fail(format!(
                "{key} {v:?} must be an http:// or https:// URL"
            )));
        }
    }
    if o.authorization_server.is_some() && o.token_endpoint.is_some() {
        return Err(fail(
            "give `authorization-server` (its metadata is read) or `token-endpoint`, not both"
                .into(),
        ));
    }
    if o.token_endpoint.is_some() && o.grant != Grant::ClientCredentials {
        return Err(fail(
            "`token-endpoint` is for grant = \"client_credentials\"; the authorization-code grant needs the server's metadata (use `authorization-server`)".into(),
        ));
    }
    if o.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
        return Err(fail(
            "scopes are single words (no spaces, none empty)".into(),
        ));
    }
    let token_file = match (&o.token_file, o.grant) {
        (Some(f), _) => Some(base_dir.join(f)),
        (None, Grant::ClientCredentials) => None,
        (None, Grant::AuthorizationCode) => Some(default_token_file(name, env).ok_or_else(|| {
            fail("no state directory ($XDG_STATE_HOME or $HOME) for the tokens: set `token-file`".into())
        })?),
    };
    Ok(OAuthSettings {
        grant: o.grant,
        client_id,
        client_secret,
        scopes: o.scopes.clone(),
        authorization_server: o.authorization_server.clone(),
        token_endpoint: o.token_endpoint.clone(),
        resource: o.resource.clone().unwrap_or_else(|| url.to_owned()),
        token_file,
        headless: false,
    })
}

/// `$XDG_STATE_HOME/mender/oauth/NAME.json` (else under
/// `~/.local/state`): the user's own state, not the config's directory,
/// which may be shared or checked in.
fn default_token_file(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let state = match env("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env("HOME").filter(|d| !d.is_empty())?).join(".local/state"),
    };
    Some(state.join("mender/oauth").join(format!("{name}.json")))
}

#[cfg(test)]
mod tests {
    use super::super::McpConfig;
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("cs-0123456789".into()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<McpConfig, ConfigError> {
        McpConfig::parse_with_env(text, "m.toml", Path::new("/etc/m"), &env)
    }

    #[test]
    fn client_credentials_and_authorization_code_settings() {
        let c = parse(
            "[mcp.servers.r]\nurl = \"https://h.example/mcp\"\n[mcp.servers.r.oauth]\ngrant = \"client_credentials\"\nclient-id = \"gw\"\nclient-secret = \"${SECRET}\"\nscopes = [\"read\"]\n",
        )
        .unwrap();
        let s = &c.servers[0];
        let o = s.http.as_ref().unwrap().oauth.as_ref().unwrap();
        assert_eq!(o.grant, Grant::ClientCredentials);
        assert_eq!(o.client_secret.as_deref(), Some("cs-0123456789"));
        assert_eq!(o.resource, "https://h.example/mcp");
        assert_eq!(o.token_file, None);
        assert!(s.secret_values().any(|v| v == "cs-0123456789"));
        assert!(!format!("{s:?}").contains("cs-0123456789"));

        let c = parse("[mcp.servers.r]\nurl = \"https://h.example/mcp\"\noauth = {}\n").unwrap();
        let o = c.servers[0].http.as_ref().unwrap().oauth.clone().unwrap();
        assert_eq!(o.grant, Grant::AuthorizationCode);
        assert_eq!(
            o.token_file.as_deref(),
            Some(Path::new("/home/u/.local/state/mender/oauth/r.json"))
        );
        let c = parse("[mcp.servers.r]\nurl = \"https://h.example/mcp\"\noauth = { token-file = \"t.json\" }\n").unwrap();
        let o = c.servers[0].http.as_ref().unwrap().oauth.clone().unwrap();
        assert_eq!(o.token_file.as_deref(), Some(Path::new("/etc/m/t.json")));
    }

    #[test]
    fn bad_oauth_tables_are_refused_where_they_are_written() {
        let head = "[mcp.servers.r]\nurl = \"https://h.example/mcp\"\n";
        for (body, line, says) in [
            (
                "oauth = { grant = \"client_credentials\", client-id = \"a\" }\n",
                3,
                "needs `client-id` and `client-secret`",
            ),
            (
                "oauth = { client-secret = \"x\" }\n",
                3,
                "needs the `client-id`",
            ),
            ("oauth = { grant = \"implicit\" }\n", 3, "unknown variant"),
            (
                "oauth = { client-id = \"${NOPE}\" }\n",
                3,
                "`NOPE` is not set",
            ),
            (
                "oauth = { token-endpoint = \"https://a/t\" }\n",
                3,
                "is for grant = \"client_credentials\"",
            ),
            (
                "oauth = { authorization-server = \"sso.example\" }\n",
                3,
                "http:// or https://",
            ),
            (
                "[mcp.servers.r.oauth]\nscopes = [\"a b\"]\n",
                3,
                "single words",
            ),
            (
                "[mcp.servers.r.oauth]\nclient-idd = \"a\"\n",
                4,
                "unknown field",
            ),
            (
                "headers = { Authorization = \"Bearer x\" }\noauth = {}\n",
                3,
                "Authorization",
            ),
        ] {
            let e = parse(&format!("{head}{body}")).unwrap_err();
            assert_eq!(e.line, line, "{body}: {e}");
            assert!(e.to_string().contains(says), "{body}: {e}");
            assert!(
                e.to_string().contains("`r`")
                    || says == "unknown field"
                    || says == "unknown variant",
                "{body}: {e}"
            );
        }
        let e = parse("[mcp.servers.r]\ncommand = \"x\"\noauth = {}\n").unwrap_err();
        assert!(
            e.to_string().contains("`oauth` is for a remote server"),
            "{e}"
        );
    }
}
