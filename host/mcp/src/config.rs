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
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use mender::config::{ConfigError, Source};

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

/// The gateway's settings: the upstream servers and where status is served.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct McpConfig {
    /// Upstream servers, in name order.
    pub servers: Vec<ServerSpec>,
    /// Where `mender status` asks for the gateway's health (a Unix socket).
    pub status_socket: PathBuf,
}

/// One upstream MCP server, run as a child process over stdio.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSpec {
    /// The server's name (the key in `[mcp.servers.*]`).
    pub name: String,
    /// The program to run.
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
}

impl ServerSpec {
    /// The values of `env` entries whose names say they are credentials
    /// (`*TOKEN*`, `*KEY*`, `*SECRET*`, `*PASSWORD*`, `*AUTH*`,
    /// `*CREDENTIAL*`, `*COOKIE*`): register them with
    /// `RuntimeBuilder::secret`, as `mender mcp-proxy` does, so they are
    /// redacted wherever a server echoes them (its stderr, its errors).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        const WORDS: [&str; 7] = [
            "TOKEN",
            "KEY",
            "SECRET",
            "PASSWORD",
            "AUTH",
            "CREDENTIAL",
            "COOKIE",
        ];
        self.env
            .iter()
            .filter(|(k, _)| {
                let k = k.to_ascii_uppercase();
                WORDS.iter().any(|w| k.contains(w))
            })
            .map(|(_, v)| v.as_str())
    }
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
    #[serde(default)]
    servers: BTreeMap<String, Spanned<ServerToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerToml {
    command: String,
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
        let src = Source { origin, text };
        let error = |offset: usize, message: String| src.error(offset, message);
        let raw: FileToml = toml::from_str(text).map_err(|e| {
            error(
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().to_owned(),
            )
        })?;
        let raw = raw.mcp.unwrap_or_default();
        let mut servers = Vec::new();
        for (name, spanned) in &raw.servers {
            let offset = spanned.span().start;
            let s = spanned.get_ref();
            if s.command.trim().is_empty() {
                return Err(error(
                    offset,
                    format!("mcp server `{name}`: `command` is empty"),
                ));
            }
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
            let (line, _) = src.line_col(offset);
            servers.push(ServerSpec {
                name: name.clone(),
                command: s.command.clone(),
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
            });
        }
        let status_socket = match raw.status_socket {
            Some(p) => base_dir.join(p),
            None => default_status_socket(Path::new(origin)),
        };
        Ok(McpConfig {
            servers,
            status_socket,
        })
    }
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
    fn the_default_socket_is_stable_per_config_file() {
        let a = default_status_socket(Path::new("/srv/a/mender.toml"));
        assert_eq!(a, default_status_socket(Path::new("/srv/a/mender.toml")));
        assert_ne!(a, default_status_socket(Path::new("/srv/b/mender.toml")));
    }
}
