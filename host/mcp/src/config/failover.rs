//! `failover` and `eject-for`: the servers a server's calls go to while it
//! cannot serve them, checked against the other servers.

use std::time::Duration;

use toml::Spanned;

/// How long a server that failed an attempt is passed over for its
/// backups before it is tried again: long enough that a burst of calls
/// does not each pay for the failure, short enough that the primary gets
/// its traffic back soon after it recovers.
pub(crate) const DEFAULT_EJECT_FOR: Duration = Duration::from_secs(5);

/// Puts every server some other server fails over to after the others
/// (keeping their order otherwise): where two servers offer a tool, the
/// first one owns it, and that must be the primary, whose calls fail over,
/// not its backup.
pub(super) fn backups_last(servers: &mut [super::ServerSpec]) {
    let backups: Vec<String> = servers.iter().flat_map(|s| s.failover.clone()).collect();
    servers.sort_by_key(|s| backups.contains(&s.name));
}

/// Checks that every name in `failover` is another configured server;
/// the offset and message of the first that is not.
pub(super) fn check(
    name: &str,
    failover: Option<&Spanned<Vec<String>>>,
    eject_for: Option<Duration>,
    servers: &[&String],
    replicated: bool,
) -> Result<(Vec<String>, Duration), (usize, String)> {
    let list = failover.map(|l| l.get_ref().clone()).unwrap_or_default();
    let at = failover.map_or(0, |l| l.span().start);
    for backup in &list {
        if backup == name {
            return Err((
                at,
                format!("mcp server `{name}`: failover names the server itself"),
            ));
        }
        if !servers.contains(&backup) {
            let known: Vec<&str> = servers.iter().map(|s| s.as_str()).collect();
            return Err((
                at,
                format!(
                    "mcp server `{name}`: failover names `{backup}`, which is not a configured server (configured: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    // Ejection passes a server over for another process: a backup, or
    // another replica.
    if eject_for.is_some() && list.is_empty() && !replicated {
        return Err((
            at,
            format!("mcp server `{name}`: eject-for needs failover or replicas"),
        ));
    }
    Ok((list, eject_for.unwrap_or(DEFAULT_EJECT_FOR)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::McpConfig;

    fn parse(text: &str) -> Result<McpConfig, String> {
        McpConfig::parse(text, "mender.toml", Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn failover_names_other_servers_and_backups_come_last() {
        let config = parse(
            "[mcp.servers.a-backup]\ncommand = \"b\"\n\
             [mcp.servers.main]\ncommand = \"m\"\nfailover = [\"a-backup\"]\neject-for = \"2s\"\n",
        )
        .unwrap();
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["main", "a-backup"],
            "the primary owns shared tool names"
        );
        assert_eq!(config.servers[0].failover, ["a-backup"]);
        assert_eq!(
            config.servers[0].eject_for,
            std::time::Duration::from_secs(2)
        );

        let e = parse("[mcp.servers.main]\ncommand = \"m\"\nfailover = [\"nope\"]\n").unwrap_err();
        assert!(
            e.contains("mender.toml:3:")
                && e.contains(
                    "failover names `nope`, which is not a configured server (configured: main)"
                ),
            "{e}"
        );
        let e = parse("[mcp.servers.main]\ncommand = \"m\"\nfailover = [\"main\"]\n").unwrap_err();
        assert!(e.contains("failover names the server itself"), "{e}");
        let e = parse("[mcp.servers.main]\ncommand = \"m\"\neject-for = \"1s\"\n").unwrap_err();
        assert!(e.contains("eject-for needs failover or replicas"), "{e}");
    }
}
