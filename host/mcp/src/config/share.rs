//! Whether one process of a local server serves every client of the HTTP
//! front, or each client gets its own (`share = …`, `max-processes`).
//!
//! Shared is the default: most MCP servers are tool servers that keep no
//! state between calls (a fetcher, a clock, a database client), and one
//! process is cheaper and starts once. A server that keeps state per
//! connection (a browser session, a REPL, a scratch workspace, a counter)
//! would mix the clients' state up when shared: declare it `per-client`.
//! Nothing in a server's `initialize` answer says whether it keeps state
//! (no capability or instruction field carries it), so the gateway cannot
//! guess; the config says it. On the stdio front there is one client, so
//! both mean the same.

use serde::Deserialize;
use toml::Spanned;

use mender::config::{ConfigError, Source};

/// Per-client processes of one server at once, unless `max-processes`
/// says otherwise: each is a whole process (a node server is ~50 MB), so
/// the default keeps a gateway on a small machine alive when many clients
/// connect, while a team's agents still each get one.
pub const DEFAULT_MAX_PROCESSES: usize = 16;

/// The `share` of an `[mcp.servers.*]` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Share {
    /// One process for every client (the default).
    #[default]
    Shared,
    /// One process per client session of the HTTP front, started at the
    /// session's `initialize` and stopped when the session ends.
    PerClient,
}

/// Checks `share` and `max-processes` for server `name`: per-client is for
/// local servers (`command`), and the cap is at least 1.
pub(super) fn check(
    src: &Source<'_>,
    name: &str,
    share: Option<&Spanned<Share>>,
    max_processes: Option<&Spanned<usize>>,
    remote: bool,
) -> Result<(Share, usize), ConfigError> {
    let kind = share.map_or(Share::Shared, |s| *s.get_ref());
    if let Some(s) = share
        && kind == Share::PerClient
        && remote
    {
        return Err(src.error(
            s.span().start,
            format!(
                "mcp server `{name}`: share = \"per-client\" is for local servers (`command`); \
                 a remote server (`url`) already gives each connection its own session"
            ),
        ));
    }
    let max = match max_processes {
        Some(m) if *m.get_ref() == 0 => {
            return Err(src.error(
                m.span().start,
                format!("mcp server `{name}`: max-processes must be at least 1"),
            ));
        }
        Some(m) => *m.get_ref(),
        None => DEFAULT_MAX_PROCESSES,
    };
    Ok((kind, max))
}

#[cfg(test)]
mod tests {
    use crate::config::{DEFAULT_MAX_PROCESSES, McpConfig, Share};
    use std::path::Path;

    fn parse(text: &str) -> Result<McpConfig, mender::config::ConfigError> {
        McpConfig::parse(text, "m.toml", Path::new("."))
    }

    #[test]
    fn shared_by_default_per_client_when_said_and_errors_at_their_line() {
        let c = parse("[mcp.servers.a]\ncommand = \"a\"\n").unwrap();
        let s = &c.servers[0];
        assert_eq!(
            (s.share, s.max_processes),
            (Share::Shared, DEFAULT_MAX_PROCESSES)
        );
        let c =
            parse("[mcp.servers.a]\ncommand = \"a\"\nshare = \"per-client\"\nmax-processes = 3\n")
                .unwrap();
        assert_eq!(
            (c.servers[0].share, c.servers[0].max_processes),
            (Share::PerClient, 3)
        );

        let e = parse("[mcp.servers.a]\ncommand = \"a\"\nmax-processes = 0\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.to_string()
                .contains("`a`: max-processes must be at least 1"),
            "{e}"
        );
        let e = parse("[mcp.servers.r]\nurl = \"https://x.example/mcp\"\nshare = \"per-client\"\n")
            .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("for local servers"), "{e}");
        let e = parse("[mcp.servers.a]\ncommand = \"a\"\nshare = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("per-client"), "{e}");
    }
}
