//! Client-side rate limiter: at most `rate` attempts per `per` on a service,
//! with bursts up to `burst`, across every process that shares the host's
//! state (Redis), and a pause when the upstream says "slow down". See
//! README.md for the config.

mod config;
mod limiter;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::config::Config;
use crate::limiter::Limiter;

struct RateLimiter {
    limiter: Limiter,
}

impl Strategy for RateLimiter {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(RateLimiter {
            limiter: Limiter::new(&config)?,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn admit(&self, call: &CallInfo, _recent: &Outcomes) -> Admission {
        let admission = self.limiter.admit(&HostStore, call.service(), clock::now());
        if !matches!(admission, Admission::Allow(_)) {
            metrics::counter_add("limited", 1);
        }
        admission
    }

    fn on_error(&self, event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        if let Some(pause) = limiter::hinted_pause(event) {
            self.limiter
                .pause(&HostStore, event.service(), clock::now(), pause);
            mender_guest::debug!("upstream asked for {pause}ms: pausing {}", event.service());
            metrics::counter_add("paused_by_upstream", 1);
        }
        // The limiter only shapes admission; whether to retry is for the
        // strategies after it (a backoff honours the same retry-after).
        Decision::Pass
    }
}

mender_guest::export_strategy!(RateLimiter);
