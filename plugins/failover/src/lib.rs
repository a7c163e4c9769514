//! Failover: a call whose attempt fails on one of its upstreams (a
//! connection refused, a timeout, a 5xx-like failure) is retried on the
//! next upstream that is not ejected; an upstream that fails `eject-after`
//! times within `window` is ejected (no traffic) for a time that grows
//! with each ejection in a row, then takes traffic again on probation.
//! See README.md for the config and state keys.
//!
//! It routes in both hooks of contract 0.2: `on-error` answers
//! `retry-on`, and `admit` grants an ejected upstream's attempts to
//! another, with a lease that ends when the ejection does, so calls skip
//! an ejected primary without paying for a failure first. A lease admits
//! later calls too, so `admit` leases only a route that is right for a
//! new call (`ejection::plan`).

mod config;
mod ejection;
#[cfg(test)]
mod tests;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::config::Config;

struct Failover {
    config: Config,
}

impl Failover {
    /// A lease of `lease`, never past `until` (host time), ending at the
    /// first failure; `None` when that leaves nothing.
    fn lease(&self, now: u64, until: Option<u64>) -> Option<Lease> {
        let ttl = match until {
            Some(until) => self.config.lease.get().min(until.saturating_sub(now)),
            None => self.config.lease.get(),
        };
        (ttl > 0).then_some(Lease {
            ttl,
            max_attempts: None,
            until_failure: true,
        })
    }
}

impl Strategy for Failover {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        config.check()?;
        Ok(Failover { config })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn admit(&self, call: &CallInfo, _recent: &Outcomes) -> Admission {
        let now = clock::now();
        let upstreams = call.upstreams();
        let Some(would) = call.upstream().filter(|_| !upstreams.is_empty()) else {
            // Nothing to route: a plain lease keeps successes free.
            return match self.lease(now, None) {
                Some(lease) => Admission::allow_with_lease(lease),
                None => Admission::allow(),
            };
        };
        let plan = ejection::plan(&HostStore, upstreams, would, now);
        if plan.to != would {
            let name = |i: u32| upstreams.get(i as usize).map_or("?", String::as_str);
            log::debug(&format!(
                "upstream `{}` is ejected: the attempt goes to `{}`",
                name(would),
                name(plan.to)
            ));
        }
        // Routed even when it stays where it was bound: a lease carries
        // the route to the calls it admits.
        let lease = plan.leasable.then(|| self.lease(now, plan.until)).flatten();
        Admission::allow_on(plan.to, lease)
    }

    fn on_error(&self, event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        if !self.config.kinds.contains(&event.kind) {
            return Decision::Pass;
        }
        let Some(failed) = event.upstream() else {
            return Decision::Pass;
        };
        let upstreams = event.upstreams();
        let Some(name) = upstreams.get(failed as usize) else {
            return Decision::Pass;
        };
        let now = clock::now();
        if let Some(e) = ejection::record_failure(&self.config, &HostStore, name, now) {
            log::info(&format!(
                "upstream `{}` ejected for {} ms (ejection {} in a row)",
                e.upstream, e.length, e.count
            ));
            metrics::counter_add("ejections", 1);
        }
        match ejection::next_after(&HostStore, upstreams, failed, now) {
            Some(to) => {
                metrics::counter_add("failovers", 1);
                Decision::retry_on(to, self.config.delay.get())
            }
            // Every other upstream is ejected: let the next strategy (a
            // backoff) decide about this one.
            None => Decision::Pass,
        }
    }
}

mender_guest::export_strategy!(Failover);
