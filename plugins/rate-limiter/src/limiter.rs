//! GCRA (the generic cell rate algorithm) over a [`Store`], with an
//! explicit `now`, so it runs the same on the host and in unit tests.
//!
//! One state key, `tat`: the theoretical arrival time of the next attempt,
//! in microseconds on the host clock. An attempt at `now` is allowed when
//! `max(tat, now) + interval - now <= burst * interval`, and then moves
//! `tat` by one interval with a compare-and-swap, so concurrent instances
//! (and processes, on Redis) never hand out the same slot twice. An
//! upstream hint pushes `tat` forward so nothing is allowed until the
//! upstream's time, and traffic then resumes at the steady rate, without a
//! burst. The key expires when the bucket is full again.

use mender_guest::prelude::*;
use mender_guest::state::Store;

use crate::config::Config;

const TAT: &str = "tat";

/// Compare-and-swap rounds before giving up on a contended key; the
/// attempt is then asked to wait one interval and ask again.
const MAX_RACES: usize = 8;

/// A validated limiter.
#[derive(Debug)]
pub struct Limiter {
    /// Microseconds between attempts at the steady rate.
    interval_us: u64,
    /// `burst * interval_us`: how far ahead of now `tat` may run.
    tolerance_us: u64,
    max_wait_ms: u64,
    honor_hints: bool,
}

/// What the limiter decided for an attempt at a time.
enum Slot {
    Take { tat_us: u64 },
    Later { in_ms: u64 },
}

impl Limiter {
    /// Validate `config`.
    pub fn new(config: &Config) -> Result<Limiter, String> {
        if config.rate == 0 {
            return Err("rate must be at least 1".into());
        }
        let per_us = config.per.get().saturating_mul(1000);
        if per_us == 0 {
            return Err("per must be at least 1ms".into());
        }
        let burst = config.burst.unwrap_or(config.rate);
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        let interval_us = (per_us / u64::from(config.rate)).max(1);
        Ok(Limiter {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst)),
            max_wait_ms: config.max_wait.get(),
            honor_hints: config.honor_hints,
        })
    }

    fn slot(&self, tat_us: u64, now_us: u64) -> Slot {
        let next = tat_us.max(now_us) + self.interval_us;
        let ahead = next - now_us;
        if ahead <= self.tolerance_us {
            Slot::Take { tat_us: next }
        } else {
            Slot::Later {
                in_ms: (ahead - self.tolerance_us).div_ceil(1000),
            }
        }
    }

    /// May an attempt start at `now` (ms)?
    pub fn admit(&self, store: &dyn Store, now: u64) -> Admission {
        let now_us = now.saturating_mul(1000);
        for _ in 0..MAX_RACES {
            let stored = store.get(TAT);
            let tat_us = stored.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            match self.slot(tat_us, now_us) {
                Slot::Take { tat_us } => {
                    // Past `tat`, the bucket is full again: the key can go.
                    let ttl = (tat_us - now_us).div_ceil(1000).max(1);
                    if store.compare_and_swap(
                        TAT,
                        stored.as_deref(),
                        &tat_us.to_string(),
                        Some(ttl),
                    ) {
                        return Admission::allow();
                    }
                }
                Slot::Later { in_ms } if in_ms <= self.max_wait_ms => {
                    return Admission::Wait(in_ms);
                }
                Slot::Later { in_ms } => {
                    return Admission::reject("rate limit", Some(in_ms));
                }
            }
        }
        Admission::Wait(self.interval_us.div_ceil(1000))
    }

    /// Allow nothing for `pause` ms from `now`, then resume at the steady
    /// rate. A pause never shortens one already in force.
    pub fn pause(&self, store: &dyn Store, now: u64, pause: u64) {
        if !self.honor_hints {
            return;
        }
        let now_us = now.saturating_mul(1000);
        // The first attempt allowed is the one at now + pause.
        let want = now_us
            .saturating_add(pause.saturating_mul(1000))
            .saturating_add(self.tolerance_us - self.interval_us);
        for _ in 0..MAX_RACES {
            let stored = store.get(TAT);
            let tat_us: u64 = stored.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            if tat_us >= want {
                return;
            }
            let ttl = (want - now_us).div_ceil(1000).max(1);
            if store.compare_and_swap(TAT, stored.as_deref(), &want.to_string(), Some(ttl)) {
                return;
            }
        }
    }
}

/// How long the upstream asked us to pause, if it did: `retry-after`, or a
/// `ratelimit-reset` tag (seconds, the IETF RateLimit header) on a
/// rate-limited failure.
pub fn hinted_pause(event: &ErrorEvent) -> Option<u64> {
    if event.kind != ErrorKind::RateLimited {
        return None;
    }
    event.retry_after.or_else(|| {
        event
            .tag("ratelimit-reset")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000))
    })
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
