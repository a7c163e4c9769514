//! Failover: a server's calls go to its `failover` servers while it cannot
//! serve them, and come back when it can.
//!
//! Each attempt picks its server: the primary while it is ready and not
//! ejected, else the first backup that is ready, not ejected, and lists
//! the tool under the same name. An attempt that fails on a server for a
//! reason other than the tool's own answer (connection, timeout, an HTTP
//! error) ejects that server for its `eject-for`, so the next attempt (a
//! retry) and the calls after it go elsewhere without paying for the
//! failure again; once that passes the server is tried again, and a
//! success keeps it. A server between processes (restarting, down) is
//! passed over until it is ready again: that is the probe.
//!
//! A call with backups names the server and its backups as its upstreams
//! (contract 0.2 routing, `CallSpec::upstreams`), so a strategy may route
//! an attempt itself: an attempt routed to a backup goes there if that
//! backup lists the tool ([`routed`]); an attempt on the first upstream
//! (the default, or routed back to the primary) is placed by the rule
//! above, which stays the default routing.
//!
//! A server with `replicas` is several processes of one command: "the
//! server" above is then whichever replica the rotation picks. Each
//! attempt starts one replica further along (round-robin: with calls one
//! after another, least-in-flight would send them all to the first) and
//! takes the first that is serving, by the same rule, so a replica that
//! died, hangs or failed an attempt is passed over and its retry lands on
//! the next one; once its restart succeeds it is serving again and back in
//! the rotation. Only when no replica can serve do the `failover` servers
//! take the attempt. Replicas are named among the call's upstreams after
//! the server (`name#r2`, …; before the backups), so a strategy may route
//! to one: an attempt routed to replica N goes there while it is serving.
//! An attempt the rotation placed is upstream 0 to a strategy, whichever
//! replica took it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::classify::UpstreamError;
use crate::upstream::{Upstream, UpstreamState};

/// Whether `up` can take an attempt now.
fn serving(up: &Upstream) -> bool {
    let ejected = up
        .ejected_until
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some_and(|until| Instant::now() < until);
    !ejected && up.health(|h| h.state == UpstreamState::Ready)
}

/// Whether `up` lists the tool the server knows as `own`.
fn lists(up: &Upstream, own: &str) -> bool {
    up.spec.offers_tool(own)
        && up.catalog().is_some_and(|c| {
            c.tools
                .iter()
                .any(|t| up.own_tool_name(&t.name) == Some(own))
        })
}

/// The servers `up` fails over to, in its `failover` order (none missing:
/// the config checked every name).
pub(crate) fn backups_of(up: &Upstream, upstreams: &[Arc<Upstream>]) -> Vec<Arc<Upstream>> {
    up.spec
        .failover
        .iter()
        .filter_map(|b| upstreams.iter().find(|u| u.name() == b).cloned())
        .collect()
}

/// The next serving replica of `server` in its rotation (the server
/// itself when it has no replicas and is serving); `None` when none is.
fn rotate(server: &Arc<Upstream>) -> Option<&Arc<Upstream>> {
    let n = 1 + server.replicas.len();
    let start = match n {
        1 => 0,
        _ => server.rotation.fetch_add(1, Ordering::Relaxed),
    };
    (0..n)
        .map(|i| match (start + i) % n {
            0 => server,
            r => &server.replicas[r - 1],
        })
        .find(|r| serving(r))
}

/// Whether calls to `server` choose among several processes: its
/// replicas, or its `failover` servers.
pub(crate) fn rotates(server: &Upstream, backups: &[Arc<Upstream>]) -> bool {
    !backups.is_empty() || !server.replicas.is_empty()
}

/// The names of a call's upstreams (contract 0.2): the server (the
/// host-side placement), its other replicas, then its backups.
pub(crate) fn upstream_names(server: &Upstream, backups: &[Arc<Upstream>]) -> Vec<String> {
    std::iter::once(server.name().to_owned())
        .chain(server.replicas.iter().map(|r| r.key()))
        .chain(backups.iter().map(|b| b.name().to_owned()))
        .collect()
}

/// The process the next attempt of a call to tool `own` of `primary` goes to.
pub(crate) fn target<'a>(
    primary: &'a Arc<Upstream>,
    backups: &'a [Arc<Upstream>],
    own: &str,
) -> &'a Arc<Upstream> {
    if !rotates(primary, backups) {
        return primary;
    }
    if let Some(replica) = rotate(primary) {
        return replica;
    }
    match backups.iter().find(|b| serving(b) && lists(b, own)) {
        Some(backup) => {
            tracing::info!(
                server = %primary.name(),
                backup = %backup.name(),
                tool = %own,
                "failover: the server cannot serve now; its backup takes the attempt"
            );
            backup
        }
        // No backup can either: the primary's own waiting and errors say
        // why better than a backup's would.
        None => primary,
    }
}

/// The process attempt `upstream` (an index into the call's upstreams:
/// `primary`, its other replicas, then `backups`) of a call to tool `own`
/// goes to: a replica a strategy routed it to, if it is serving; a backup,
/// if it lists the tool; else [`target`]'s choice.
pub(crate) fn routed<'a>(
    primary: &'a Arc<Upstream>,
    backups: &'a [Arc<Upstream>],
    own: &str,
    upstream: Option<u32>,
) -> &'a Arc<Upstream> {
    let index = upstream
        .and_then(|i| usize::try_from(i).ok()?.checked_sub(1))
        .unwrap_or(usize::MAX);
    if let Some(replica) = primary.replicas.get(index) {
        if serving(replica) {
            return replica;
        }
        // Dead, hung or ejected: the host knows, even if the strategy
        // does not yet; another replica serves the attempt.
        tracing::info!(
            server = %primary.name(),
            replica = replica.replica,
            tool = %own,
            "failover: a strategy routed the attempt to a replica that cannot serve now; placed by the rotation"
        );
        return target(primary, backups, own);
    }
    let chosen = index
        .checked_sub(primary.replicas.len())
        .and_then(|i| backups.get(i));
    match chosen {
        Some(backup) if lists(backup, own) => backup,
        Some(backup) => {
            tracing::info!(
                server = %primary.name(),
                backup = %backup.name(),
                tool = %own,
                "failover: a strategy routed the attempt to a backup that does not list the tool; placed as without routing"
            );
            target(primary, backups, own)
        }
        None => target(primary, backups, own),
    }
}

/// After an attempt on `up` (of a call with backups or replicas) ended: a
/// failure that is not the server's own answer ejects that process for
/// `eject_for` (the primary's); a success ends an ejection.
pub(crate) fn record(up: &Upstream, eject_for: Duration, result: Result<(), &UpstreamError>) {
    let mut until = up.ejected_until.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => *until = None,
        // The server answered: the tool failed, or the request was wrong.
        Err(UpstreamError::Tool(_) | UpstreamError::Rpc(_) | UpstreamError::Other(_)) => {}
        Err(e) => {
            tracing::warn!(
                server = %up.name(),
                replica = up.replica,
                eject_for = ?eject_for,
                "failover: an attempt failed ({e}); the process is passed over meanwhile (for another replica or a backup)"
            );
            *until = Some(Instant::now() + eject_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Hub;
    use crate::config::McpConfig;

    /// The configured servers, none started; each process marked ready.
    fn servers(text: &str) -> Vec<Arc<Upstream>> {
        let config = McpConfig::parse(text, "m.toml", std::path::Path::new(".")).unwrap();
        let rt = mender::Runtime::builder().build().unwrap();
        let hub = Arc::new(Hub::default());
        let ups: Vec<Arc<Upstream>> = config
            .servers
            .into_iter()
            .map(|s| Upstream::new(s, hub.clone(), rt.clone(), 10))
            .collect();
        for up in ups.iter().flat_map(|u| u.replica_set()) {
            up.set_state(UpstreamState::Ready, None);
        }
        ups
    }

    fn replica(up: &Upstream) -> usize {
        up.replica
    }

    #[test]
    fn attempts_go_round_the_serving_replicas() {
        let ups = servers("[mcp.servers.a]\ncommand = \"a\"\nreplicas = 3\n");
        let a = &ups[0];
        assert_eq!(a.replicas.len(), 2);
        assert_eq!(
            upstream_names(a, &[]),
            ["a", "a#r2", "a#r3"],
            "the names a strategy routes by"
        );
        let turns: Vec<usize> = (0..6).map(|_| replica(target(a, &[], "t"))).collect();
        assert_eq!(turns, [1, 2, 3, 1, 2, 3]);

        // Replica 2 is restarting and replica 3 failed an attempt: both
        // passed over, so every attempt goes to replica 1.
        a.replicas[0].set_state(UpstreamState::Restarting, None);
        let timed_out = UpstreamError::Timeout(Duration::from_secs(1));
        record(&a.replicas[1], Duration::from_secs(60), Err(&timed_out));
        let turns: Vec<usize> = (0..3).map(|_| replica(target(a, &[], "t"))).collect();
        assert_eq!(turns, [1, 1, 1]);
        // The tool's own failure ejects nothing.
        record(
            a,
            Duration::from_secs(60),
            Err(&UpstreamError::Other("bad".into())),
        );
        assert_eq!(replica(target(a, &[], "t")), 1);

        // Back (ready; a success ends an ejection): in the rotation again.
        a.replicas[0].set_state(UpstreamState::Ready, None);
        record(&a.replicas[1], Duration::from_secs(60), Ok(()));
        let mut turns: Vec<usize> = (0..3).map(|_| replica(target(a, &[], "t"))).collect();
        turns.sort_unstable();
        assert_eq!(turns, [1, 2, 3]);
    }

    #[test]
    fn a_strategy_routes_to_a_replica_or_a_backup_by_index() {
        let ups = servers(
            "[mcp.servers.a]\ncommand = \"a\"\nreplicas = 2\nfailover = [\"b\"]\n\
             [mcp.servers.b]\ncommand = \"b\"\n",
        );
        let a = &ups[0];
        let backups = backups_of(a, &ups);
        assert_eq!(upstream_names(a, &backups), ["a", "a#r2", "b"]);
        assert_eq!(routed(a, &backups, "t", Some(1)).key(), "a#r2");
        // Routed to a replica that cannot serve: placed by the rotation.
        a.replicas[0].set_state(UpstreamState::Restarting, None);
        assert_eq!(routed(a, &backups, "t", Some(1)).key(), "a");
        // The backup lists no tool (it never started): placed as unrouted,
        // on a replica.
        assert_eq!(routed(a, &backups, "t", Some(2)).name(), "a");

        // No replica can serve: the backup takes the attempt, if it lists
        // the tool; else the server's own waiting says why.
        for r in a.replica_set() {
            r.set_state(UpstreamState::Down, None);
        }
        assert_eq!(target(a, &backups, "t").name(), "a");
    }
}
