//! Adaptive timeout: each attempt's timeout is the mean plus three
//! standard deviations of the service's recent successful latencies,
//! within `min..=max`, and `initial` until enough successes were measured
//! (see `estimate.rs` and README.md). A stuck call is cut off soon after
//! it is clearly abnormal, not at a static worst-case timeout.
//!
//! It answers `admit` with a grant's `attempt-timeout` (the host takes the
//! smaller of it and its own limits), leased for `lease` so that most
//! attempts cost no Wasm call; the latencies of leased successes reach it
//! with the next report.

mod config;
mod estimate;

use mender_guest::prelude::*;
use mender_guest::state::HostStore;

use crate::config::Config;
use crate::estimate::Estimator;

struct AdaptiveTimeout {
    estimator: Estimator,
    lease: u64,
}

impl Strategy for AdaptiveTimeout {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(AdaptiveTimeout {
            estimator: Estimator::new(&config)?,
            lease: config.lease.get(),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT
    }

    fn admit(&self, _call: &CallInfo, recent: &Outcomes) -> Admission {
        let latency = if recent.successes > 0 {
            *recent.latency()
        } else {
            LatencySummary {
                count: 0,
                sum: 0,
                sum_of_squares: 0,
                span: 0,
            }
        };
        let timeout = self.estimator.update(&HostStore, clock::now(), &latency);
        metrics::gauge_set("attempt_timeout_ms", timeout as f64);
        Admission::Allow(Grant {
            attempt_timeout: Some(timeout),
            lease: (self.lease > 0).then_some(Lease {
                ttl: self.lease,
                max_attempts: None,
                until_failure: false,
            }),
            ..Grant::default()
        })
    }
}

mender_guest::export_strategy!(AdaptiveTimeout);
