//! Random numbers from the host, which seeds them so runs can be replayed.
//!
//! The `*_from` functions are the pure halves of [`unit()`] and [`between()`]:
//! give them a `u64` of your own to test jitter without a host.

/// A uniformly distributed 64-bit number.
pub fn next_u64() -> u64 {
    crate::bindings::host::random::next_u64()
}

/// A uniformly distributed number in `[0, 1)`.
pub fn unit() -> f64 {
    unit_from(next_u64())
}

/// A uniformly distributed integer in `[lo, hi)`; `lo` if `hi <= lo`.
pub fn between(lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    between_from(next_u64(), lo, hi)
}

/// Map a uniform `u64` to a uniform `f64` in `[0, 1)`, using its top 53
/// bits (all an `f64` mantissa holds).
pub fn unit_from(random: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (random >> 11) as f64 * SCALE
}

/// Map a uniform `u64` to a uniform integer in `[lo, hi)`; `lo` if
/// `hi <= lo`. Uses a widening multiply (Lemire), so there is no modulo
/// bias worth measuring for any range a delay can have.
pub fn between_from(random: u64, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = hi - lo;
    lo + ((u128::from(random) * u128::from(span)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_stays_in_range() {
        assert_eq!(unit_from(0), 0.0);
        assert!(unit_from(u64::MAX) < 1.0);
        assert!((unit_from(u64::MAX / 2) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn between_is_inclusive_exclusive() {
        assert_eq!(between_from(0, 10, 20), 10);
        assert_eq!(between_from(u64::MAX, 10, 20), 19);
        assert_eq!(between_from(u64::MAX / 2, 0, 100), 49);
        assert_eq!(between_from(12345, 7, 7), 7);
        assert_eq!(between_from(12345, 9, 3), 9);
        assert_eq!(between_from(u64::MAX, 0, u64::MAX), u64::MAX - 1);
    }
}
