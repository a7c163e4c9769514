//! Probe permits: a half-open circuit is closed only by its own probe.
//!
//! A success reported while half-open may come from an attempt admitted
//! before the circuit opened (slow, still in flight when it opened). It
//! says nothing about recovery, yet it would close the circuit. So each
//! probe is admitted under a permit (contract 0.2's `grant.permit`) that
//! names the half-open period it belongs to, and the host hands the
//! permits of successful attempts back (`current.permitted-successes()`):
//! only a success under a permit of the current period closes the circuit.

use mender_guest::prelude::*;

/// Probes numbered per half-open period: a permit is `since * ROUND +
/// probe`, so it names its period (`since`, host ms) and stays unique.
const ROUND: u64 = 1 << 16;

/// The permit of the `taken`th probe of the period that began at `since`.
pub fn permit(since: u64, taken: i64) -> u64 {
    let probe = u64::try_from(taken).unwrap_or(0) % ROUND;
    since.saturating_mul(ROUND).saturating_add(probe)
}

/// Whether a probe of the period that began at `since` succeeded.
pub fn succeeded(recent: &Outcomes, since: u64) -> bool {
    recent.successes > 0
        && recent
            .permitted_successes()
            .iter()
            .any(|p| p / ROUND == since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn successes(permits: Vec<u64>) -> Outcomes {
        let mut recent = Outcomes::default().with_permitted_successes(permits);
        recent.successes = 1;
        recent
    }

    #[test]
    fn only_a_probe_of_this_period_counts() {
        let since = 30_000;
        assert!(succeeded(&successes(vec![permit(since, 1)]), since));
        assert!(!succeeded(&successes(vec![]), since), "not a probe");
        let earlier = permit(10_000, 1);
        assert!(!succeeded(&successes(vec![earlier]), since), "an old probe");
    }
}
