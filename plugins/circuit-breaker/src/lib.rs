//! Circuit breaker: after enough failures, reject attempts on a service for
//! a while instead of piling more load on it, then let a few probes decide
//! whether it is back. See README.md for the config and state keys.
//!
//! It only uses the `admit` hook: failures are learned from the outcomes the
//! host reports, and a closed circuit leases its `allow` until the first
//! failure, so successes cost no Wasm call.

mod breaker;
mod config;
mod ops;
mod probe;
mod slow;
mod window;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::breaker::{Breaker, Transition};
use crate::config::Config;

struct CircuitBreaker {
    breaker: Breaker,
}

/// Log a transition, count it in `transitions_to_<state>`, and set the
/// `circuit_state` gauge (0 closed, 1 half-open, 2 open), which status
/// views such as `mender status` read.
fn report(transition: &Transition) {
    let (message, counter, state) = match transition {
        Transition::Opened(reason) => (
            format!("circuit opened: {reason}"),
            "transitions_to_open",
            2.0,
        ),
        Transition::HalfOpened(probes) => (
            format!("circuit half-open: letting {probes} probe(s) through"),
            "transitions_to_half_open",
            1.0,
        ),
        Transition::Closed => (
            "circuit closed: a probe succeeded".to_owned(),
            "transitions_to_closed",
            0.0,
        ),
        Transition::Reopened => (
            "circuit re-opened: a probe failed".to_owned(),
            "transitions_to_open",
            2.0,
        ),
    };
    log::info(&message);
    metrics::counter_add(counter, 1);
    metrics::gauge_set("circuit_state", state);
}

impl Strategy for CircuitBreaker {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(CircuitBreaker {
            breaker: Breaker::new(&config)?,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT
    }

    fn slow_call_threshold(&self) -> Option<u64> {
        self.breaker.slow_call_threshold()
    }

    fn admit(&self, call: &CallInfo, recent: &Outcomes) -> Admission {
        let verdict = self
            .breaker
            .admit(&HostStore, call.service(), clock::now(), recent);
        verdict.transitions.iter().for_each(report);
        verdict.admission
    }
}

mender_guest::export_strategy!(CircuitBreaker);
