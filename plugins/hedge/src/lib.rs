//! Hedging: if an attempt has not answered after `after`, the host starts
//! another of the same call beside it (at most `max` more), and the first
//! answer wins. The plugin only says when and how many; the host runs the
//! race, hedges idempotent calls only and caps `max` with its
//! `max-hedges` guardrail. See README.md for the config.

mod config;
mod estimate;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::config::{After, Config};

struct Hedge {
    config: Config,
}

impl Strategy for Hedge {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        config.validate()?;
        Ok(Hedge { config })
    }

    fn hooks(&self) -> Hooks {
        // No `on-error`: what to do after a failure is for the other
        // strategies (the host then never calls it: a pass).
        Hooks::ADMIT
    }

    fn admit(&self, _call: &CallInfo, recent: &Outcomes) -> Admission {
        let after = match self.config.after {
            After::Fixed(ms) => ms.get(),
            After::Auto => estimate::auto_after(&self.config, &HostStore, recent.latency()),
        };
        let grant = Grant::default().with_hedge(after, self.config.max);
        Admission::allow_with(match self.config.refresh.get() {
            0 => grant,
            ttl => grant.with_lease(Lease {
                ttl,
                max_attempts: None,
                until_failure: false,
            }),
        })
    }
}

mender_guest::export_strategy!(Hedge);
