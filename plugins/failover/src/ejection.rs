//! Outlier ejection over the state store and an explicit `now`, so it runs
//! the same against the host and in unit tests.
//!
//! State keys (scoped by the host to this plugin and the service, so on a
//! shared Redis store every gateway of a fleet sees the same ejections),
//! per upstream name `<u>`:
//!
//! * `fails:<u>`: counted failures on `<u>` within `window` (an atomic
//!   increment; the key expires `window` after the first).
//! * `ejected:<u>`: `<until>:<count>`: ejected until host time `<until>`,
//!   the `<count>`-th ejection in a row. The key outlives the ejection by
//!   the ejection's length: meanwhile `<u>` is on probation, takes traffic
//!   again, and one counted failure ejects it again, for longer. Once the
//!   key expires, the next ejection counts from 1 again.

use mender_guest::state::Store;

use crate::config::Config;

/// Where an upstream stands now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Takes traffic.
    Serving,
    /// Takes no traffic until `until`.
    Ejected { until: u64 },
    /// Takes traffic again after its `count`-th ejection in a row; one
    /// counted failure ejects it again.
    Probation { count: u32 },
}

/// An ejection that just happened, for the plugin to log and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ejected {
    pub upstream: String,
    pub length: u64,
    pub count: u32,
}

fn ejected_key(name: &str) -> String {
    format!("ejected:{name}")
}

fn fails_key(name: &str) -> String {
    format!("fails:{name}")
}

/// The health of upstream `name` at `now`.
pub fn health(store: &dyn Store, name: &str, now: u64) -> Health {
    let stored = store.get(&ejected_key(name));
    let parsed = stored.as_deref().and_then(|text| {
        let (until, count) = text.split_once(':')?;
        Some((until.parse::<u64>().ok()?, count.parse::<u32>().ok()?))
    });
    match parsed {
        None => Health::Serving,
        Some((until, _)) if now < until => Health::Ejected { until },
        Some((_, count)) => Health::Probation { count },
    }
}

fn serving(store: &dyn Store, name: &str, now: u64) -> bool {
    !matches!(health(store, name, now), Health::Ejected { .. })
}

/// Ejects `name` for the `count`-th time in a row: `eject-for` times
/// `count`, at most `max-eject-for`.
fn eject(config: &Config, store: &dyn Store, name: &str, count: u32, now: u64) -> Ejected {
    let length = config
        .eject_for
        .get()
        .saturating_mul(u64::from(count))
        .min(config.max_eject_for.get());
    let until = now.saturating_add(length);
    // Kept past `until` for as long again: the probation.
    store.set(
        &ejected_key(name),
        &format!("{until}:{count}"),
        Some(length.saturating_mul(2)),
    );
    store.delete(&fails_key(name));
    Ejected {
        upstream: name.to_owned(),
        length,
        count,
    }
}

/// Counts a failure of a counted kind on upstream `name`, ejecting it
/// when that makes `eject-after` within the window, or at once while it
/// is on probation.
pub fn record_failure(config: &Config, store: &dyn Store, name: &str, now: u64) -> Option<Ejected> {
    match health(store, name, now) {
        // An attempt sent there anyway (every upstream was ejected): it
        // is already out.
        Health::Ejected { .. } => None,
        Health::Probation { count } => Some(eject(config, store, name, count + 1, now)),
        Health::Serving => {
            let fails = store.increment(&fails_key(name), 1, Some(config.window.get()));
            (fails >= i64::from(config.eject_after)).then(|| eject(config, store, name, 1, now))
        }
    }
}

/// The upstream to retry on after a failure on `failed`: the first other
/// one, in the call's order, that is not ejected; `None` if there is none.
pub fn next_after(store: &dyn Store, upstreams: &[String], failed: u32, now: u64) -> Option<u32> {
    (0..upstreams.len())
        .filter(|&i| i != failed as usize)
        .find(|&i| serving(store, &upstreams[i], now))
        .and_then(|i| u32::try_from(i).ok())
}

/// Where an attempt goes, and whether that answer may be leased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The upstream the attempt goes to.
    pub to: u32,
    /// Whether the host may reuse this answer for later attempts: a lease
    /// admits later calls too, whose attempts start bound for upstream 0,
    /// so it may carry this route only if that is where they should go.
    pub leasable: bool,
    /// When the plan may change on its own: the end of upstream 0's
    /// ejection, if it is ejected (a lease must not outlive it).
    pub until: Option<u64>,
}

/// Where an attempt bound for `would` (the host's choice: the first
/// upstream, or the last route) goes: there, unless it is ejected; then
/// to the first upstream, in order, that is not (or still there, if none
/// is).
pub fn plan(store: &dyn Store, upstreams: &[String], would: u32, now: u64) -> Plan {
    let ejected = |i: usize| {
        upstreams
            .get(i)
            .is_some_and(|name| !serving(store, name, now))
    };
    let first_serving = (0..upstreams.len()).find(|&i| !ejected(i));
    let to = match usize::try_from(would) {
        Ok(w) if w < upstreams.len() && !ejected(w) => Some(w),
        _ => first_serving,
    };
    let until = match upstreams.first().map(|name| health(store, name, now)) {
        Some(Health::Ejected { until }) => Some(until),
        _ => None,
    };
    // Where a new call's first attempt should go.
    let fresh = if until.is_some() {
        first_serving
    } else {
        Some(0)
    };
    let to = to.and_then(|i| u32::try_from(i).ok()).unwrap_or(would);
    Plan {
        to,
        leasable: fresh.and_then(|i| u32::try_from(i).ok()) == Some(to),
        until,
    }
}
