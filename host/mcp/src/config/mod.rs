//! `[mcp]` in `mender.toml`: the gateway's upstream servers, validated with
//! errors that name the file, line and server.
//!
//! ```toml
//! [mcp]
//! status-socket = "/run/user/1000/mender.sock"   # optional
//!
//! [mcp.servers.github]
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-github"]
//! env = { GITHUB_TOKEN = "…" }     # added to the inherited environment
//! optional = true                   # down: left out of tools/list
//! call-timeout = "30s"
//! retry-tools = ["create_issue"]    # retry even though not annotated idempotent
//! service = "github"                # the [services.*] pipeline (default: the name)
//! prefix = "gh_"                    # its tools listed as gh_<name>
//! allow-tools = ["search_*"]        # only these tools (exact names, or a `*` suffix)
//! deny-tools = ["delete_repo"]      # never these
//! redact-results = "secrets"        # "secrets" (default), "all" or "none"
//! share = "per-client"              # HTTP front: a process per client ("shared": one)
//! replicas = 3                      # three processes, calls spread over them
//!
//! [mcp.servers.remote]             # over Streamable HTTP (see `http.rs`)
//! url = "https://mcp.example.com/mcp"
//! headers = { Authorization = "Bearer ${REMOTE_TOKEN}" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use mender::config::{ConfigError, Source};

mod failover;
mod http;
mod oauth;
mod protocol;
mod replicas;
mod share;
pub use http::HttpEndpoint;
pub use oauth::{Grant, OAuthSettings};
pub use protocol::UpstreamProtocol;
pub(crate) use protocol::is_stateless;
pub use replicas::MAX_REPLICAS;
pub use share::{DEFAULT_MAX_PROCESSES, Share};

/// The MCP SDKs' default request timeout: a tool that legitimately runs
/// long (a build, a crawl) should not be cut short by the gateway unless
/// the user says so.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Spawn plus `initialize`: `npx` fetching a package on a cold cache takes
/// tens of seconds, so a short limit would fail healthy servers.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// After a call times out, a ping this long tells a hung server (no answer
/// at all) from a slow tool (the server still answers pings).
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(5);
/// First restart delay: long enough that a crash loop does not spin the
/// CPU, short enough that a one-off crash costs the caller little.
const DEFAULT_RESTART_BASE: Duration = Duration::from_millis(250);
/// Restart delay cap: a server that stays broken is still retried twice a
/// minute, so it comes back on its own once fixed.
const DEFAULT_RESTART_MAX: Duration = Duration::from_secs(30);
/// The largest client message accepted: rmcp's own default, so a payload
/// acceptable over its HTTP transport is acceptable here.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Below this not even an `initialize` with a long client description fits.
const MIN_MAX_MESSAGE_BYTES: usize = 4096;

/// The gateway's settings: the upstream servers and where status is served.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct McpConfig {
    /// Upstream servers, in name order.
    pub servers: Vec<ServerSpec>,
    /// Where `mender status` asks for the gateway's health (a Unix socket).
    pub status_socket: PathBuf,
    /// The largest message (one line) the client may send; a longer one is
    /// answered with an error (`max-message-bytes`).
    pub max_message_bytes: usize,
    /// Whether clients may speak the 2026-07-28 protocol to the gateway
    /// (`stateless-clients`). Off by default: a handshake-era server's own
    /// requests (sampling, elicitation, roots) cannot reach a client of
    /// that era yet, which replaced them, so a client that can speak both
    /// keeps them by staying on the handshake.
    pub stateless_clients: bool,
    /// Lines of each local server's stderr kept for `mender logs`
    /// (`log-lines`; 0 keeps none).
    pub log_lines: usize,
}

/// What of an upstream's own results is redacted before the client sees
/// them (`redact-results`). Mender's own text is always fully redacted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedactResults {
    /// The credentials the config hands the server (`env`, `args`).
    #[default]
    Secrets,
    /// Those, plus anything that looks like a credential (as in logs).
    All,
    /// Nothing: the results pass through as the server sent them.
    None,
}

/// One upstream MCP server: run as a child process over stdio, or, when
/// `http` is set, reached over Streamable HTTP.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSpec {
    /// The server's name (the key in `[mcp.servers.*]`).
    pub name: String,
    /// The program to run (empty for a remote server).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to the inherited environment. Values may be secrets:
    /// they are never logged nor shown in status.
    pub env: BTreeMap<String, String>,
    /// Working directory (relative to the config file), if not the gateway's.
    pub cwd: Option<PathBuf>,
    /// Whether the gateway keeps serving the other servers when this one
    /// cannot start (its tools are left out until it recovers).
    pub optional: bool,
    /// Limit on each attempt of a forwarded request.
    pub call_timeout: Duration,
    /// Limit on spawn plus the `initialize` handshake.
    pub start_timeout: Duration,
    /// After a timed-out call, how long a ping may take before the server
    /// counts as hung.
    pub ping_timeout: Duration,
    /// Whether a hung server is killed and restarted.
    pub restart_on_hang: bool,
    /// Tools treated as idempotent (safe to retry) although the server does
    /// not annotate them `readOnlyHint` or `idempotentHint`.
    pub retry_tools: Vec<String>,
    /// The `[services.*]` pipeline its calls go through.
    pub service: String,
    /// First restart delay; it doubles per consecutive failed start.
    pub restart_base: Duration,
    /// Restart delay cap.
    pub restart_max: Duration,
    /// `file:line` of its table, for messages.
    pub location: String,
    /// Put before each of its tool names as the client sees them.
    pub prefix: String,
    /// When not empty, only these tools are offered (names as the server
    /// gives them; a trailing `*` matches any rest).
    pub allow_tools: Vec<String>,
    /// Tools never offered (same patterns).
    pub deny_tools: Vec<String>,
    /// What of its results is redacted.
    pub redact_results: RedactResults,
    /// For a remote server (`url = …`): where and how to reach it.
    pub http: Option<HttpEndpoint>,
    /// Which era of MCP to speak to it (`protocol`).
    pub protocol: UpstreamProtocol,
    /// Servers that serve its tools while it cannot (`failover`), in order.
    pub failover: Vec<String>,
    /// How long it is passed over for them after a failed attempt
    /// (`eject-for`).
    pub eject_for: Duration,
    /// One process for every client, or one per client (`share`).
    pub share: Share,
    /// The most per-client processes at once (`max-processes`).
    pub max_processes: usize,
    /// How many processes of it run, its calls spread over them
    /// (`replicas`; 1 unless said).
    pub replicas: usize,
}

impl ServerSpec {
    /// The values of `env` entries whose names say they are credentials
    /// (`*TOKEN*`, `*KEY*`, `*SECRET*`, `*PASSWORD*`, `*AUTH*`,
    /// `*CREDENTIAL*`, `*COOKIE*`), and the same in `args`: the value of
    /// `--api-key=V` or `API_KEY=V`, and the argument after a flag such as
    /// `--token` or `-password`. Register them with
    /// `RuntimeBuilder::secret`, as `mender mcp-proxy` does, so they are
    /// redacted wherever a server echoes them (its stderr, its errors,
    /// its results).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        let from_env = self
            .env
            .iter()
            .filter(|(k, _)| names_a_secret(k))
            .map(|(_, v)| v.as_str());
        let mut from_args = Vec::new();
        let mut after_flag = false;
        for arg in &self.args {
            if after_flag && !arg.starts_with('-') {
                from_args.push(arg.as_str());
            }
            after_flag = false;
            match arg.split_once('=') {
                Some((name, value)) if names_a_secret(name) => from_args.push(value),
                Some(_) => {}
                None => after_flag = arg.starts_with('-') && names_a_secret(arg),
            }
        }
        let from_http = self.http.iter().flat_map(|h| h.secrets.iter());
        from_env
            .chain(from_args)
            .chain(from_http.map(String::as_str))
            .filter(|v| !v.is_empty())
    }

    /// What the server is, for messages: its command or its URL (without
    /// a password).
    pub fn target(&self) -> String {
        match &self.http {
            Some(h) => match http::url_password(&h.url) {
                Some(p) => h.url.replacen(&format!(":{p}@"), ":…@", 1),
                None => h.url.clone(),
            },
            None => format!("`{}`", self.command),
        }
    }

    /// Whether the server offers `tool` (its own name), per `allow-tools`
    /// and `deny-tools`.
    pub fn offers_tool(&self, tool: &str) -> bool {
        let matches = |pattern: &String| match pattern.strip_suffix('*') {
            Some(start) => tool.starts_with(start),
            None => tool == pattern,
        };
        (self.allow_tools.is_empty() || self.allow_tools.iter().any(matches))
            && !self.deny_tools.iter().any(matches)
    }
}

/// Whether a variable or flag name says it holds a credential.
pub(crate) fn names_a_secret(name: &str) -> bool {
    const WORDS: [&str; 7] = [
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "AUTH",
        "CREDENTIAL",
        "COOKIE",
    ];
    let name = name.to_ascii_uppercase();
    WORDS.iter().any(|w| name.contains(w))
}

#[derive(Debug, Default, Deserialize)]
struct FileToml {
    #[serde(default)]
    mcp: Option<McpToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct McpToml {
    status_socket: Option<String>,
    max_message_bytes: Option<Spanned<usize>>,
    log_lines: Option<usize>,
    #[serde(default)]
    stateless_clients: bool,
    #[serde(default)]
    servers: BTreeMap<String, Spanned<ServerToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerToml {
    command: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    ca_file: Option<String>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    oauth: Option<Spanned<oauth::OAuthToml>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default, with = "humantime_serde")]
    call_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    start_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    ping_timeout: Option<Duration>,
    /// On by default: a server that answers nothing, not even a ping, will
    /// not recover by waiting, and every call meanwhile costs a timeout.
    #[serde(default = "yes")]
    restart_on_hang: bool,
    #[serde(default)]
    retry_tools: Vec<String>,
    service: Option<String>,
    #[serde(default)]
    restart_backoff: BackoffToml,
    prefix: Option<Spanned<String>>,
    allow_tools: Option<Spanned<Vec<String>>>,
    deny_tools: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    redact_results: RedactResults,
    #[serde(default)]
    protocol: UpstreamProtocol,
    failover: Option<Spanned<Vec<String>>>,
    #[serde(default, with = "humantime_serde")]
    eject_for: Option<Duration>,
    share: Option<Spanned<Share>>,
    max_processes: Option<Spanned<usize>>,
    replicas: Option<Spanned<usize>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BackoffToml {
    #[serde(default, with = "humantime_serde")]
    base: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max: Option<Duration>,
}

impl McpConfig {
    /// Reads `[mcp]` from a config file; relative paths (`cwd`, the status
    /// socket) are resolved against the file's directory.
    pub fn from_file(path: &Path) -> Result<McpConfig, ConfigError> {
        let text = Source::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        McpConfig::parse(&text, &path.display().to_string(), base)
    }

    /// Parses `[mcp]` from config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<McpConfig, ConfigError> {
        McpConfig::parse_with_env(text, origin, base_dir, &|name| std::env::var(name).ok())
    }

    /// [`McpConfig::parse`], reading `${NAME}` from `env`.
    pub fn parse_with_env(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<McpConfig, ConfigError> {
        let src = Source { origin, text };
        let error = |offset: usize, message: String| src.error(offset, message);
        let raw = read_toml(&src)?.mcp.unwrap_or_default();
        let mut servers = Vec::new();
        for (name, spanned) in &raw.servers {
            let offset = spanned.span().start;
            let s = spanned.get_ref();
            let http = http::endpoint(name, s, &src, base_dir, env)?;
            let command = match (&s.command, &http) {
                (Some(c), None) if c.get_ref().trim().is_empty() => {
                    return Err(error(
                        c.span().start,
                        format!("mcp server `{name}`: `command` is empty"),
                    ));
                }
                (Some(c), None) => c.get_ref().clone(),
                (None, Some(_)) => String::new(),
                (Some(c), Some(_)) => {
                    return Err(error(
                        c.span().start,
                        format!(
                            "mcp server `{name}`: give `command` (a local server) or `url` (a remote one), not both"
                        ),
                    ));
                }
                (None, None) => {
                    return Err(error(
                        offset,
                        format!(
                            "mcp server `{name}`: needs `command` (a local server) or `url` (a remote one)"
                        ),
                    ));
                }
            };
            let restart_base = s.restart_backoff.base.unwrap_or(DEFAULT_RESTART_BASE);
            let restart_max = s.restart_backoff.max.unwrap_or(DEFAULT_RESTART_MAX);
            if restart_base.is_zero() || restart_base > restart_max {
                return Err(error(
                    offset,
                    format!(
                        "mcp server `{name}`: restart-backoff base ({restart_base:?}) must be \
                         above zero and at most max ({restart_max:?})"
                    ),
                ));
            }
            let call_timeout = s.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
            for (key, value) in [
                ("call-timeout", call_timeout),
                (
                    "start-timeout",
                    s.start_timeout.unwrap_or(DEFAULT_START_TIMEOUT),
                ),
                (
                    "ping-timeout",
                    s.ping_timeout.unwrap_or(DEFAULT_PING_TIMEOUT),
                ),
            ] {
                if value.is_zero() {
                    return Err(error(
                        offset,
                        format!("mcp server `{name}`: {key} must be above zero"),
                    ));
                }
            }
            if let Some(prefix) = &s.prefix {
                let ok = !prefix.get_ref().is_empty()
                    && prefix
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
                if !ok {
                    return Err(error(
                        prefix.span().start,
                        format!(
                            "mcp server `{name}`: prefix {:?} must be letters, digits, `_`, `-`, `.` or `/` (a valid tool name start)",
                            prefix.get_ref()
                        ),
                    ));
                }
            }
            for (key, list) in [
                ("allow-tools", &s.allow_tools),
                ("deny-tools", &s.deny_tools),
            ] {
                let Some(list) = list else { continue };
                if let Some(bad) = list
                    .get_ref()
                    .iter()
                    .find(|p| p.is_empty() || p.trim_end_matches('*').contains('*'))
                {
                    return Err(error(
                        list.span().start,
                        format!(
                            "mcp server `{name}`: {key} entry {bad:?} must be a tool name, or a name start followed by one `*`"
                        ),
                    ));
                }
            }
            let allow_tools = s
                .allow_tools
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_default();
            let deny_tools = s
                .deny_tools
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_default();
            if let Some(both) = allow_tools.iter().find(|t| deny_tools.contains(t))
                && let Some(deny) = &s.deny_tools
            {
                return Err(error(
                    deny.span().start,
                    format!("mcp server `{name}`: {both:?} is in both allow-tools and deny-tools"),
                ));
            }
            let names: Vec<&String> = raw.servers.keys().collect();
            let (share, max_processes) = share::check(
                &src,
                name,
                s.share.as_ref(),
                s.max_processes.as_ref(),
                http.is_some(),
            )?;
            let replicas = replicas::check(&src, name, s.replicas.as_ref(), http.is_some(), share)?;
            let (failover, eject_for) =
                failover::check(name, s.failover.as_ref(), s.eject_for, &names, replicas > 1)
                    .map_err(|(at, message)| error(if at == 0 { offset } else { at }, message))?;
            let (line, _) = src.line_col(offset);
            servers.push(ServerSpec {
                name: name.clone(),
                command,
                args: s.args.clone(),
                env: s.env.clone(),
                cwd: s.cwd.as_ref().map(|c| base_dir.join(c)),
                optional: s.optional,
                call_timeout,
                start_timeout: s.start_timeout.unwrap_or(DEFAULT_START_TIMEOUT),
                ping_timeout: s.ping_timeout.unwrap_or(DEFAULT_PING_TIMEOUT),
                restart_on_hang: s.restart_on_hang,
                retry_tools: s.retry_tools.clone(),
                service: s.service.clone().unwrap_or_else(|| name.clone()),
                restart_base,
                restart_max,
                location: format!("{origin}:{line}"),
                prefix: s
                    .prefix
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_default(),
                allow_tools,
                deny_tools,
                redact_results: s.redact_results,
                protocol: s.protocol,
                http,
                failover,
                eject_for,
                share,
                max_processes,
                replicas,
            });
        }
        failover::backups_last(&mut servers);
        let status_socket = match raw.status_socket {
            Some(p) => base_dir.join(p),
            None => default_status_socket(Path::new(origin)),
        };
        let max_message_bytes = match raw.max_message_bytes {
            Some(n) if *n.get_ref() < MIN_MAX_MESSAGE_BYTES => {
                return Err(error(
                    n.span().start,
                    format!(
                        "mcp: max-message-bytes ({}) must be at least {MIN_MAX_MESSAGE_BYTES}",
                        n.get_ref()
                    ),
                ));
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_MAX_MESSAGE_BYTES,
        };
        Ok(McpConfig {
            servers,
            status_socket,
            max_message_bytes,
            stateless_clients: raw.stateless_clients,
            log_lines: raw
                .log_lines
                .unwrap_or(crate::stderr_log::DEFAULT_LOG_LINES),
        })
    }
}

/// The file's tables, or an error at the offending line.
fn read_toml(src: &Source<'_>) -> Result<FileToml, ConfigError> {
    toml::from_str(src.text).map_err(|e| {
        src.error(
            e.span().map_or(0, |s| s.start),
            e.message().trim_end().to_owned(),
        )
    })
}

/// Where the gateway started with the config file at `path` serves its
/// status: only `[mcp] status-socket` is read, so `mender status` works
/// without the environment variables the servers' settings name.
pub fn status_socket_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = Source::read(path)?;
    let origin = path.display().to_string();
    let raw = read_toml(&Source {
        origin: &origin,
        text: &text,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(match raw.mcp.and_then(|m| m.status_socket) {
        Some(p) => base.join(p),
        None => default_status_socket(path),
    })
}

/// Where a gateway started with `config` serves its status when the config
/// does not say: a per-user runtime directory, one socket per config file
/// (named by a hash of its absolute path), so `mender status --config F`
/// finds the gateway `mender mcp-proxy --config F` started.
pub fn default_status_socket(config: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(config).unwrap_or_else(|_| config.to_owned());
    let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("mender-mcp-{tag}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_server_and_line() {
        let text = "[mcp.servers.time]\ncommand = \"uvx\"\nargs = [\"mcp-server-time\"]\n";
        let c = McpConfig::parse(text, "m.toml", Path::new("/etc")).unwrap();
        let s = &c.servers[0];
        assert_eq!((s.name.as_str(), s.service.as_str()), ("time", "time"));
        assert_eq!(s.call_timeout, DEFAULT_CALL_TIMEOUT);
        assert!(s.restart_on_hang && !s.optional);
        assert_eq!(s.location, "m.toml:1");

        let bad = "[guardrails]\n\n[mcp.servers.x]\ncommand = \"a\"\ncall-timout = \"1s\"\n";
        let e = McpConfig::parse(bad, "m.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().contains("call-timout"), "{e}");

        let zero = "[mcp.servers.x]\ncommand = \"a\"\nping-timeout = \"0s\"\n";
        let e = McpConfig::parse(zero, "m.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("`x`: ping-timeout"), "{e}");
    }

    #[test]
    fn secrets_in_args_and_tool_lists() {
        let text = "[mcp.servers.x]\ncommand = \"a\"\nargs = [\"--api-key\", \"k-123456\", \"--token=t-654321\", \"--verbose\", \"plain\", \"PASSWORD=p-abcdef\"]\nenv = { GH_TOKEN = \"g-000000\", HOME = \"/h\" }\nallow-tools = [\"get_*\", \"echo\"]\ndeny-tools = [\"get_secret\"]\n";
        let c = McpConfig::parse(text, "m.toml", Path::new(".")).unwrap();
        let s = &c.servers[0];
        let mut secrets: Vec<&str> = s.secret_values().collect();
        secrets.sort_unstable();
        assert_eq!(secrets, ["g-000000", "k-123456", "p-abcdef", "t-654321"]);
        assert!(s.offers_tool("echo") && s.offers_tool("get_time"));
        assert!(!s.offers_tool("get_secret") && !s.offers_tool("delete"));
        assert_eq!(c.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(c.log_lines, crate::stderr_log::DEFAULT_LOG_LINES);
        let kept = McpConfig::parse("[mcp]\nlog-lines = 50\n", "m.toml", Path::new(".")).unwrap();
        assert_eq!(kept.log_lines, 50);

        let both =
            "[mcp.servers.x]\ncommand = \"a\"\nallow-tools = [\"a\"]\ndeny-tools = [\"a\"]\n";
        let e = McpConfig::parse(both, "m.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let bad = "[mcp.servers.x]\ncommand = \"a\"\nprefix = \"a b\"\n";
        let e = McpConfig::parse(bad, "m.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("prefix"), "{e}");
        let small = "[mcp]\nmax-message-bytes = 10\n";
        let e = McpConfig::parse(small, "m.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn the_default_socket_is_stable_per_config_file() {
        let a = default_status_socket(Path::new("/srv/a/mender.toml"));
        assert_eq!(a, default_status_socket(Path::new("/srv/a/mender.toml")));
        assert_ne!(a, default_status_socket(Path::new("/srv/b/mender.toml")));
    }
}
