//! Delay curves and jitter, as pure functions of one random `u64`.
//!
//! Jitter follows the AWS Architecture Blog's "Exponential Backoff And
//! Jitter": spreading retries out keeps a crowd of clients that failed
//! together from retrying together.

use mender_guest::random::between_from;
use serde::Deserialize;

/// How a delay is randomised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// The nominal delay, exactly.
    None,
    /// Uniform in `[0, nominal]`. The default: of the AWS variants it does
    /// the least total work and spreads competing clients the most.
    #[default]
    Full,
    /// Uniform in `[nominal/2, nominal]`: never retries almost at once.
    Equal,
    /// Uniform in `[base, 3 * previous]`, capped. Without per-call state,
    /// `previous` is the nominal delay of the previous retry.
    Decorrelated,
}

/// The nominal delays: `base * factor^(n-1)` after attempt `n`, capped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Curve {
    /// The delay after the first failed attempt, in ms.
    pub base: u64,
    /// How much each delay grows over the previous one.
    pub factor: f64,
    /// No delay exceeds this, in ms.
    pub cap: u64,
}

impl Curve {
    /// The delay before retrying after attempt `attempt` (from 1) failed.
    pub fn nominal(&self, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let delay = self.base as f64 * self.factor.powi(exponent);
        // `as` saturates, and `min` first keeps infinities out.
        delay.min(self.cap as f64) as u64
    }

    /// The jittered delay after attempt `attempt` failed, from `random`.
    pub fn jittered(&self, jitter: Jitter, attempt: u32, random: u64) -> u64 {
        let nominal = self.nominal(attempt);
        match jitter {
            Jitter::None => nominal,
            Jitter::Full => between_from(random, 0, nominal.saturating_add(1)),
            Jitter::Equal => {
                let half = nominal / 2;
                half + between_from(random, 0, nominal - half + 1)
            }
            Jitter::Decorrelated => {
                let previous = if attempt <= 1 {
                    self.base
                } else {
                    self.nominal(attempt - 1)
                };
                let upper = previous.saturating_mul(3);
                between_from(random, self.base, upper).min(self.cap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURVE: Curve = Curve {
        base: 100,
        factor: 2.0,
        cap: 1_000,
    };

    #[test]
    fn nominal_grows_by_factor_and_stops_at_cap() {
        let delays: Vec<u64> = (1..=6).map(|n| CURVE.nominal(n)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(CURVE.nominal(u32::MAX), 1_000);
        let slow = Curve {
            factor: 1.5,
            ..CURVE
        };
        assert_eq!(slow.nominal(3), 225);
    }

    #[test]
    fn no_jitter_is_the_nominal_delay() {
        assert_eq!(CURVE.jittered(Jitter::None, 3, 12345), 400);
    }

    #[test]
    fn full_jitter_spans_zero_to_nominal() {
        assert_eq!(CURVE.jittered(Jitter::Full, 3, 0), 0);
        assert_eq!(CURVE.jittered(Jitter::Full, 3, u64::MAX), 400);
        assert_eq!(CURVE.jittered(Jitter::Full, 3, u64::MAX / 2), 200);
    }

    #[test]
    fn equal_jitter_spans_half_to_nominal() {
        assert_eq!(CURVE.jittered(Jitter::Equal, 3, 0), 200);
        assert_eq!(CURVE.jittered(Jitter::Equal, 3, u64::MAX), 400);
        assert_eq!(CURVE.jittered(Jitter::Equal, 1, u64::MAX), 100);
    }

    #[test]
    fn decorrelated_jitter_spans_base_to_three_previous() {
        // After attempt 3 the previous nominal delay was 200ms.
        assert_eq!(CURVE.jittered(Jitter::Decorrelated, 3, 0), 100);
        assert_eq!(CURVE.jittered(Jitter::Decorrelated, 3, u64::MAX), 599);
        // After attempt 1 "previous" is the base itself.
        assert_eq!(CURVE.jittered(Jitter::Decorrelated, 1, u64::MAX), 299);
        // Capped like every other delay.
        assert_eq!(CURVE.jittered(Jitter::Decorrelated, 9, u64::MAX), 1_000);
    }

    #[test]
    fn every_jitter_stays_within_the_cap() {
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            for attempt in 1..40 {
                for random in [0, 1 << 20, u64::MAX / 3, u64::MAX] {
                    assert!(CURVE.jittered(jitter, attempt, random) <= CURVE.cap);
                }
            }
        }
    }
}
