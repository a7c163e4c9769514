//! Adaptive bulkhead: a concurrency limit on a service's attempts in
//! flight that learns, AIMD-style, from timeouts, overload and rising
//! latency (see `limit.rs` and README.md).
//!
//! It reads contract 0.2's `current.in-flight()` (the host counts every
//! attempt from before its admission, so a limit enforced here holds
//! however many are admitted at once) and its slow calls against the
//! `latency-target` it declares. It gives no lease: every attempt asks.

mod config;
mod limit;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::config::{Config, WhenFull};
use crate::limit::{Aimd, Signals};

struct Bulkhead {
    aimd: Aimd,
    latency_target: u64,
    overload_kinds: Vec<ErrorKind>,
    when_full: WhenFull,
    wait: u64,
}

impl Bulkhead {
    /// Applies `recent` to the limit and reports it (`concurrency_limit`).
    fn limit(&self, recent: &Outcomes) -> (f64, Signals) {
        let signals = Signals::of(recent, &self.overload_kinds);
        let limit = self.aimd.update(&HostStore, &signals);
        metrics::gauge_set("concurrency_limit", limit.floor());
        (limit, signals)
    }
}

impl Strategy for Bulkhead {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(Bulkhead {
            aimd: Aimd::new(&config)?,
            latency_target: config.latency_target.get(),
            overload_kinds: config.overload_kinds.clone(),
            when_full: config.when_full,
            wait: config.wait.get(),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn slow_call_threshold(&self) -> Option<u64> {
        Some(self.latency_target)
    }

    fn admit(&self, _call: &CallInfo, recent: &Outcomes) -> Admission {
        let (limit, signals) = self.limit(recent);
        // The limit is whole attempts; at least `min-limit` >= 1 always.
        let cap = limit.floor().max(1.0) as u32;
        if signals.in_flight < cap {
            return Admission::allow();
        }
        metrics::counter_add("limited", 1);
        match self.when_full {
            WhenFull::Reject => Admission::reject(
                format!(
                    "concurrency limit {cap} reached ({} in flight)",
                    signals.in_flight
                ),
                None,
            ),
            WhenFull::Wait => Admission::Wait(self.wait),
        }
    }

    fn on_error(&self, _event: &ErrorEvent, recent: &Outcomes) -> Decision {
        // A failure is a signal now, not at the next admission.
        self.limit(recent);
        Decision::Pass
    }
}

mender_guest::export_strategy!(Bulkhead);
