//! GCRA (the generic cell rate algorithm) over a [`Store`], with an
//! explicit `now`, so it runs the same on the host and in unit tests.
//!
//! One state key, `tat`: the theoretical arrival time of the next attempt,
//! in microseconds on the host clock. `n` attempts at `now` are allowed
//! when `max(tat, now) + n * interval - now <= burst * interval`, and then
//! move `tat` by `n` intervals with a compare-and-swap, so concurrent
//! instances (and processes, on Redis) never hand out the same slot twice.
//! An upstream hint pushes `tat` forward so nothing is allowed until the
//! upstream's time, and traffic then resumes at the steady rate, without a
//! burst. The key expires when the bucket is full again.
//!
//! **One round trip per decision.** The limiter remembers, per service,
//! the `tat` it last wrote or saw, and sends its decision as one
//! `state.batch`: a compare-and-swap from that value (to take slots) or an
//! `expect` of it (to confirm a wait). When another instance or process
//! moved `tat` meanwhile, the answer carries the value found, and the
//! limiter decides again from it: two trips, never a separate read.
//!
//! **Leases.** With `lease = n`, an allowed attempt takes up to `n` slots
//! at once and the host admits the next `n - 1` attempts itself, without a
//! Wasm call, for as long as those slots last at the steady rate. Slots a
//! lease does not use are lost, never handed out twice: a lease can only
//! make the fleet slower than its rate, never faster.

use mender_guest::prelude::*;
use mender_guest::state::{LastSeen, Op, OpResult, Store};

use crate::config::Config;

const TAT: &str = "tat";

/// Rounds before giving up on a contended key; the attempt is then asked
/// to wait one interval and ask again.
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
    /// Slots one plugin call may take (1: no lease).
    lease: u32,
    /// The `tat` last written or seen, per service (`None`: absent), so a
    /// decision is one compare-and-swap instead of a read and a swap. A
    /// stale guess costs one more trip, never a wrong answer.
    known: LastSeen,
}

/// What the limiter decided for an attempt at a time.
enum Slot {
    Take { tat_us: u64, slots: u32 },
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
        if config.lease == 0 || config.lease > burst {
            return Err(format!(
                "lease must be between 1 and burst ({burst}): it is how many slots one call takes at once, got {}",
                config.lease
            ));
        }
        let interval_us = (per_us / u64::from(config.rate)).max(1);
        Ok(Limiter {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst)),
            max_wait_ms: config.max_wait.get(),
            honor_hints: config.honor_hints,
            lease: config.lease,
            known: LastSeen::default(),
        })
    }

    /// As many slots as are free at `now`, up to the lease, or how long
    /// until one is.
    fn slot(&self, tat_us: u64, now_us: u64) -> Slot {
        let from = tat_us.max(now_us);
        let room = (now_us + self.tolerance_us).saturating_sub(from);
        let free = (room / self.interval_us).min(u64::from(self.lease));
        if free >= 1 {
            return Slot::Take {
                tat_us: from + free * self.interval_us,
                slots: free as u32,
            };
        }
        let ahead = from + self.interval_us - now_us;
        Slot::Later {
            in_ms: (ahead - self.tolerance_us).div_ceil(1000),
        }
    }

    /// May an attempt on `service` start at `now` (ms)?
    pub fn admit(&self, store: &dyn Store, service: &str, now: u64) -> Admission {
        let now_us = now.saturating_mul(1000);
        let mut stored = self.known.get(service);
        for _ in 0..MAX_RACES {
            let tat_us = stored.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            let (op, answer) = match self.slot(tat_us, now_us) {
                Slot::Take { tat_us, slots } => {
                    // Past `tat`, the bucket is full again: the key can go.
                    let ttl = (tat_us - now_us).div_ceil(1000).max(1);
                    let tat = tat_us.to_string();
                    let op = Op::compare_and_swap(TAT, stored.as_deref(), &tat, Some(ttl));
                    (op, Ok((tat, self.allow(slots))))
                }
                Slot::Later { in_ms } => {
                    let answer = if in_ms <= self.max_wait_ms {
                        Admission::Wait(in_ms)
                    } else {
                        Admission::reject("rate limit", Some(in_ms))
                    };
                    (Op::expect(TAT, stored.as_deref()), Err(answer))
                }
            };
            match store.batch(&[op]).first() {
                Some(OpResult::Done) => {
                    return match answer {
                        Ok((tat, admission)) => {
                            self.known.set(service, Some(tat));
                            admission
                        }
                        Err(later) => {
                            self.known.set(service, stored);
                            later
                        }
                    };
                }
                // Moved by someone else: decide again from what it holds.
                Some(OpResult::Value(found)) => stored = found.clone(),
                _ => stored = store.get(TAT),
            }
        }
        self.known.set(service, stored);
        Admission::Wait(self.interval_us.div_ceil(1000))
    }

    /// An `allow` for an attempt that took `slots` slots: the rest as a
    /// lease, for as long as they last at the steady rate.
    fn allow(&self, slots: u32) -> Admission {
        if slots <= 1 {
            return Admission::allow();
        }
        Admission::allow_with_lease(Lease {
            ttl: (u64::from(slots) * self.interval_us).div_ceil(1000).max(1),
            max_attempts: Some(slots - 1),
            // A failure may be the upstream's 429: `on-error` pauses the
            // limiter, and the lease must not outlive that.
            until_failure: true,
        })
    }

    /// Allow nothing on `service` for `pause` ms from `now`, then resume at
    /// the steady rate. A pause never shortens one already in force.
    pub fn pause(&self, store: &dyn Store, service: &str, now: u64, pause: u64) {
        if !self.honor_hints {
            return;
        }
        let now_us = now.saturating_mul(1000);
        // The first attempt allowed is the one at now + pause.
        let want = now_us
            .saturating_add(pause.saturating_mul(1000))
            .saturating_add(self.tolerance_us - self.interval_us);
        let mut stored = self.known.get(service);
        for _ in 0..MAX_RACES {
            let tat_us: u64 = stored.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            if tat_us >= want {
                // Confirm the guess: the pause in force may be shorter.
                match store.batch(&[Op::expect(TAT, stored.as_deref())]).first() {
                    Some(OpResult::Done) => return self.known.set(service, stored),
                    Some(OpResult::Value(found)) => stored = found.clone(),
                    _ => stored = store.get(TAT),
                }
                continue;
            }
            let ttl = (want - now_us).div_ceil(1000).max(1);
            let tat = want.to_string();
            let op = Op::compare_and_swap(TAT, stored.as_deref(), &tat, Some(ttl));
            match store.batch(&[op]).first() {
                Some(OpResult::Done) => return self.known.set(service, Some(tat)),
                Some(OpResult::Value(found)) => stored = found.clone(),
                _ => stored = store.get(TAT),
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
