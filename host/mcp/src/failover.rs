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

use std::sync::Arc;
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

/// The server the next attempt of a call to tool `own` of `primary` goes to.
pub(crate) fn target<'a>(
    primary: &'a Arc<Upstream>,
    backups: &'a [Arc<Upstream>],
    own: &str,
) -> &'a Arc<Upstream> {
    if backups.is_empty() || serving(primary) {
        return primary;
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

/// The server attempt `upstream` (an index into the call's upstreams:
/// `primary`, then `backups`) of a call to tool `own` goes to: a backup a
/// strategy routed it to, if that backup lists the tool, else
/// [`target`]'s choice.
pub(crate) fn routed<'a>(
    primary: &'a Arc<Upstream>,
    backups: &'a [Arc<Upstream>],
    own: &str,
    upstream: Option<u32>,
) -> &'a Arc<Upstream> {
    let chosen = upstream
        .and_then(|i| usize::try_from(i).ok()?.checked_sub(1))
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

/// After an attempt on `up` (of a call with backups) ended: a failure
/// that is not the server's own answer ejects it for `eject_for` (the
/// primary's); a success ends an ejection.
pub(crate) fn record(up: &Upstream, eject_for: Duration, result: Result<(), &UpstreamError>) {
    let mut until = up.ejected_until.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => *until = None,
        // The server answered: the tool failed, or the request was wrong.
        Err(UpstreamError::Tool(_) | UpstreamError::Rpc(_) | UpstreamError::Other(_)) => {}
        Err(e) => {
            tracing::warn!(
                server = %up.name(),
                eject_for = ?eject_for,
                "failover: an attempt failed ({e}); the server is passed over for its backups meanwhile"
            );
            *until = Some(Instant::now() + eject_for);
        }
    }
}
