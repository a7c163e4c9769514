//! `replicas`: how many processes of one local server the gateway runs,
//! its calls spread over them (see `crate::failover`).
//!
//! Replicas are for a local server (`command`) that keeps no state
//! between calls: each call may land on any of them. A remote server
//! (`url`) is one endpoint the gateway cannot multiply, and a
//! `per-client` server already gives each client its own process, whose
//! state would be split over replicas; both are refused at the line.

use toml::Spanned;

use mender::config::{ConfigError, Source};

use super::Share;

/// The most processes one server may run as replicas: each is a whole
/// process (a node server is ~50 MB), and past a handful a server that
/// needs more throughput needs a different design more than more copies.
pub const MAX_REPLICAS: usize = 16;

/// Checks `replicas` of server `name`: between 1 and [`MAX_REPLICAS`], on
/// a local server that is shared by every client.
pub(super) fn check(
    src: &Source<'_>,
    name: &str,
    replicas: Option<&Spanned<usize>>,
    remote: bool,
    share: Share,
) -> Result<usize, ConfigError> {
    let Some(r) = replicas else { return Ok(1) };
    let at = r.span().start;
    let n = *r.get_ref();
    let refuse = |message: String| Err(src.error(at, format!("mcp server `{name}`: {message}")));
    if n == 0 || n > MAX_REPLICAS {
        return refuse(format!(
            "replicas must be between 1 and {MAX_REPLICAS} (got {n})"
        ));
    }
    if remote && n > 1 {
        return refuse(
            "replicas is for local servers (`command`): the gateway cannot run more copies \
             of a remote server; configure another endpoint as its own server and name it \
             in `failover`"
                .to_owned(),
        );
    }
    if share == Share::PerClient && n > 1 {
        return refuse(
            "replicas cannot be combined with share = \"per-client\": each client already \
             gets its own process, whose state replicas would split"
                .to_owned(),
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{MAX_REPLICAS, McpConfig};

    fn parse(text: &str) -> Result<McpConfig, mender::config::ConfigError> {
        McpConfig::parse(text, "m.toml", Path::new("."))
    }

    #[test]
    fn one_by_default_and_as_many_as_said() {
        let c = parse("[mcp.servers.a]\ncommand = \"a\"\n").unwrap();
        assert_eq!(c.servers[0].replicas, 1);
        let c = parse(&format!(
            "[mcp.servers.a]\ncommand = \"a\"\nreplicas = {MAX_REPLICAS}\n"
        ))
        .unwrap();
        assert_eq!(c.servers[0].replicas, MAX_REPLICAS);
        // With a failover list too: the replicas first, then the backups.
        let c = parse(
            "[mcp.servers.a]\ncommand = \"a\"\nreplicas = 3\nfailover = [\"b\"]\n\
             [mcp.servers.b]\ncommand = \"b\"\n",
        )
        .unwrap();
        assert_eq!((c.servers[0].replicas, c.servers[0].failover.len()), (3, 1));
        // eject-for needs something to rotate to: replicas are enough.
        let c =
            parse("[mcp.servers.a]\ncommand = \"a\"\nreplicas = 2\neject-for = \"2s\"\n").unwrap();
        assert_eq!(c.servers[0].eject_for, std::time::Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_file_line_and_server() {
        for (text, line, says) in [
            (
                "[mcp.servers.a]\ncommand = \"a\"\n\nreplicas = 0\n",
                4,
                "`a`: replicas must be between 1 and 16 (got 0)",
            ),
            (
                "[mcp.servers.a]\ncommand = \"a\"\nreplicas = 17\n",
                3,
                "`a`: replicas must be between 1 and 16 (got 17)",
            ),
            (
                "[mcp.servers.r]\nurl = \"https://x.example/mcp\"\nreplicas = 2\n",
                3,
                "`r`: replicas is for local servers (`command`)",
            ),
            (
                "[mcp.servers.p]\ncommand = \"a\"\nshare = \"per-client\"\nreplicas = 2\n",
                4,
                "`p`: replicas cannot be combined with share = \"per-client\"",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            let shown = e.to_string();
            assert!(shown.contains(&format!("m.toml:{line}:")), "{shown}");
            assert!(shown.contains(says), "{shown}");
        }
        let e =
            parse("[mcp.servers.r]\nurl = \"https://x.example/mcp\"\nreplicas = 2\n").unwrap_err();
        assert!(e.to_string().contains("failover"), "{e}");
        let e = parse("[mcp.servers.a]\ncommand = \"a\"\nreplicas = -1\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }
}
