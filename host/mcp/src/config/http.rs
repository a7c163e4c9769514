//! `url = "…"` servers: upstreams reached over MCP's Streamable HTTP
//! transport instead of run as child processes.
//!
//! ```toml
//! [mcp.servers.github]
//! url = "https://api.example.com/mcp"
//! headers = { Authorization = "Bearer ${GITHUB_TOKEN}" }
//! ca-file = "private-ca.pem"      # trusted beside the system roots
//! connect-timeout = "10s"
//! ```
//!
//! `${NAME}` in `url` and `headers` is read from the gateway's environment
//! when the config loads (`$$` is a literal `$`), so tokens stay out of
//! config files. Every value read that way is a secret: registered with the
//! redactor, like the credentials a stdio server gets in `env`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mender::config::{ConfigError, Source};

use super::ServerToml;
use super::oauth::{self, OAuthSettings};

/// Long enough for a TLS handshake across a slow VPN, short enough that a
/// server that is gone fails its attempt well before the call timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach a remote server.
#[derive(Clone, PartialEq)]
pub struct HttpEndpoint {
    /// The MCP endpoint (`http://` or `https://`), variables expanded.
    pub url: String,
    /// Sent with every request, variables expanded.
    pub headers: BTreeMap<String, String>,
    /// A PEM file of extra trusted roots (a private CA), beside the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// Limit on opening a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Tokens mender gets and refreshes itself (`[….oauth]`).
    pub oauth: Option<OAuthSettings>,
    /// What must never be shown: the values read from the environment, the
    /// credentials in header values, the URL's password and the OAuth
    /// client secret.
    pub secrets: Vec<String>,
}

/// Never the headers, URL or secrets themselves: a config printed in a log
/// or a panic must not carry them.
impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

/// Headers the transport sets itself: a configured value would break the
/// protocol (sessions, resumption, content negotiation).
const RESERVED_HEADERS: [&str; 5] = [
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// The endpoint of a `url = …` server, checked; `None` for a stdio server
/// (which must then not use the HTTP-only keys).
pub(super) fn endpoint(
    name: &str,
    s: &ServerToml,
    src: &Source<'_>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<HttpEndpoint>, ConfigError> {
    let Some(url) = &s.url else {
        let http_only = [
            ("headers", s.headers.is_some()),
            ("ca-file", s.ca_file.is_some()),
            ("connect-timeout", s.connect_timeout.is_some()),
            ("oauth", s.oauth.is_some()),
        ];
        if let Some((key, _)) = http_only.iter().find(|(_, set)| *set) {
            let at = match (&s.headers, &s.oauth, &s.command) {
                (Some(h), _, _) => h.span().start,
                (None, Some(o), _) => o.span().start,
                (None, None, Some(c)) => c.span().start,
                (None, None, None) => 0,
            };
            return Err(src.error(
                at,
                format!("mcp server `{name}`: `{key}` is for a remote server (`url = …`)"),
            ));
        }
        return Ok(None);
    };
    let at = url.span().start;
    let fail = |message: String| src.error(at, format!("mcp server `{name}`: {message}"));
    let stdio_only = [
        ("args", !s.args.is_empty()),
        ("env", !s.env.is_empty()),
        ("cwd", s.cwd.is_some()),
    ];
    if let Some((key, _)) = stdio_only.iter().find(|(_, set)| *set) {
        return Err(fail(format!(
            "`{key}` is for a local server (`command = …`); a remote one takes `headers`"
        )));
    }
    let mut secrets = Vec::new();
    let expanded =
        expand(url.get_ref(), env, &mut secrets).map_err(|e| fail(format!("url: {e}")))?;
    let uri: ::http::Uri = expanded
        .parse()
        .map_err(|e| fail(format!("url {:?} is not a URL: {e}", url.get_ref())))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(fail(format!(
            "url {:?} must start with http:// or https:// and name a host",
            url.get_ref()
        )));
    }
    if let Some(password) = url_password(&expanded) {
        secrets.push(password.to_owned());
    }
    let mut headers = BTreeMap::new();
    let (at, listed) = match &s.headers {
        Some(h) => (h.span().start, h.get_ref().clone()),
        None => (at, BTreeMap::new()),
    };
    let fail = |message: String| src.error(at, format!("mcp server `{name}`: {message}"));
    for (key, value) in &listed {
        let header = ::http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| fail(format!("headers: {key:?} is not a header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(fail(format!(
                "headers: `{key}` is set by the MCP transport itself"
            )));
        }
        let value =
            expand(value, env, &mut secrets).map_err(|e| fail(format!("headers.{key}: {e}")))?;
        if ::http::HeaderValue::from_str(&value).is_err() {
            return Err(fail(format!(
                "headers.{key}: the value is not a valid header value (control characters?)"
            )));
        }
        if s.oauth.is_some() && header == ::http::header::AUTHORIZATION {
            return Err(fail(
                "headers: `Authorization` is set by `oauth` (the tokens mender gets); remove one of them".into(),
            ));
        }
        header_secrets(key, &value, &mut secrets);
        headers.insert(key.clone(), value);
    }
    let fail =
        |message: String| src.error(url.span().start, format!("mcp server `{name}`: {message}"));
    let ca_file = s.ca_file.as_ref().map(|f| base_dir.join(f));
    if let Some(f) = &ca_file
        && !f.is_file()
    {
        return Err(fail(format!(
            "ca-file {} is not a readable file",
            f.display()
        )));
    }
    let connect_timeout = s.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    if connect_timeout.is_zero() {
        return Err(fail("connect-timeout must be above zero".into()));
    }
    let oauth = s
        .oauth
        .as_ref()
        .map(|o| oauth::settings(name, o, &expanded, src, base_dir, env, &mut secrets))
        .transpose()?;
    secrets.sort();
    secrets.dedup();
    Ok(Some(HttpEndpoint {
        url: expanded,
        headers,
        ca_file,
        connect_timeout,
        oauth,
        secrets,
    }))
}

/// Replaces each `${NAME}` in `value` with the variable's value, noting it
/// in `read`; `$$` is a literal `$`. `Err` names what is wrong.
pub(crate) fn expand(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = rest.strip_prefix('{') else {
            out.push('$');
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in {value:?}"))?;
        let name = &body[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`${{{name}}}` is not a variable name"));
        }
        let found = env(name).ok_or_else(|| {
            format!("environment variable `{name}` is not set (named as `${{{name}}}`)")
        })?;
        if !found.is_empty() {
            read.push(found.clone());
        }
        out.push_str(&found);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The credentials in a header: the whole value of a header whose name
/// says it carries one, and the token after its scheme (`Bearer x` → `x`).
pub(crate) fn header_secrets(name: &str, value: &str, out: &mut Vec<String>) {
    let lower = name.to_ascii_lowercase();
    let credential = matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || super::names_a_secret(name);
    if !credential {
        return;
    }
    out.push(value.to_owned());
    if let Some((_, token)) = value.split_once(' ') {
        out.push(token.trim().to_owned());
    }
}

/// The password in `scheme://user:password@host/…`, if any.
pub(crate) fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::super::McpConfig;
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t-123456".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_and_are_remembered() {
        let mut read = Vec::new();
        let v = expand("Bearer ${TOKEN}; $$5 ${EMPTY}$x", &env, &mut read).unwrap();
        assert_eq!(v, "Bearer t-123456; $5 $x");
        assert_eq!(read, ["t-123456"]);
        let e = expand("${NOPE}", &env, &mut read).unwrap_err();
        assert!(e.contains("`NOPE` is not set"), "{e}");
        assert!(expand("${TOKEN", &env, &mut read).is_err());
        assert!(expand("${1A}", &env, &mut read).is_err());
    }

    #[test]
    fn credentials_in_headers_and_urls() {
        let mut out = Vec::new();
        header_secrets("Authorization", "Bearer abc-def", &mut out);
        header_secrets("X-Api-Key", "k-999", &mut out);
        header_secrets("Accept-Language", "en", &mut out);
        assert_eq!(out, ["Bearer abc-def", "abc-def", "k-999"]);
        assert_eq!(url_password("https://u:p%40ss@h:1/mcp?x=@"), Some("p%40ss"));
        assert_eq!(url_password("https://h/mcp?u=a:b@c"), None);
    }

    fn parse(text: &str) -> Result<McpConfig, ConfigError> {
        McpConfig::parse_with_env(text, "m.toml", Path::new("."), &env)
    }

    #[test]
    fn remote_servers_are_checked_where_they_are_written() {
        let ok = "[mcp.servers.r]\nurl = \"https://u:pw-secret@h.example/mcp\"\nheaders = { Authorization = \"Bearer ${TOKEN}\" }\n";
        let c = parse(ok).unwrap();
        let s = &c.servers[0];
        let h = s.http.as_ref().unwrap();
        assert_eq!(h.headers["Authorization"], "Bearer t-123456");
        let mut secrets: Vec<&str> = s.secret_values().collect();
        secrets.sort_unstable();
        assert_eq!(secrets, ["Bearer t-123456", "pw-secret", "t-123456"]);
        assert_eq!(s.target(), "https://u:…@h.example/mcp");
        assert!(!format!("{s:?}").contains("t-123456"));

        for (text, line, says) in [
            (
                "[mcp.servers.r]\nurl = \"ftp://h/\"\n",
                2,
                "http:// or https://",
            ),
            (
                "[mcp.servers.r]\nurl = \"http://h/\"\nheaders = { X = \"${NOPE}\" }\n",
                3,
                "`NOPE` is not set",
            ),
            (
                "[mcp.servers.r]\nurl = \"http://h/\"\nheaders = { Mcp-Session-Id = \"x\" }\n",
                3,
                "set by the MCP transport",
            ),
            (
                "[mcp.servers.r]\nurl = \"http://h/\"\nargs = [\"a\"]\n",
                2,
                "`args` is for a local server",
            ),
            (
                "[mcp.servers.r]\ncommand = \"a\"\nurl = \"http://h/\"\n",
                2,
                "not both",
            ),
            (
                "[mcp.servers.r]\ncommand = \"a\"\nheaders = { A = \"b\" }\n",
                3,
                "`headers` is for a remote server",
            ),
            ("[mcp.servers.r]\noptional = true\n", 1, "needs `command`"),
            (
                "[mcp.servers.r]\nurl = \"http://h/\"\nca-file = \"/nonexistent.pem\"\n",
                2,
                "ca-file",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().contains("`r`"), "{text}: {e}");
        }
    }
}
