//! Exponential backoff: retry failed attempts after delays that grow by
//! `factor` from `base` up to `max-delay`, with jitter, per-kind rules and
//! `Retry-After` support. See README.md for the config.

mod config;
mod delay;
mod policy;

use mender_guest::prelude::*;

use crate::config::Config;
use crate::policy::Policy;

/// The strategy: a validated policy; it keeps no state between calls.
struct ExponentialBackoff {
    policy: Policy,
}

impl Strategy for ExponentialBackoff {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(ExponentialBackoff {
            policy: Policy::new(&config)?,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_ERROR
    }

    fn on_error(&self, event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        let decision = self.policy.decide(event, random::next_u64());
        mender_guest::debug!(
            "{} attempt {} failed ({}): {decision:?}",
            event.operation(),
            event.attempt,
            event.kind
        );
        decision
    }
}

mender_guest::export_strategy!(ExponentialBackoff);
