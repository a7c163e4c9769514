//! Limits no plugin can exceed, and the checks that enforce them.
//!
//! A strategy proposes; the guardrails dispose. Whatever a plugin answers,
//! a call makes at most `max_attempts` attempts, waits at most `max_delay`
//! at a time, ends by its deadline, and never repeats a non-idempotent
//! operation unless the configuration allows it.

use std::time::Duration;

use serde::Deserialize;

use crate::config::retry_budget::{RetryBudget, RetryBudgetToml};

/// Guardrails for one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guardrails {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Each attempt is cancelled (and classified `timeout`) after this.
    pub attempt_timeout: Option<Duration>,
    /// The whole call (attempts and waits) ends by this.
    pub deadline: Option<Duration>,
    /// The longest single wait a strategy may ask for; longer asks are
    /// clamped to it.
    pub max_delay: Duration,
    /// Whether non-idempotent operations may be retried at all.
    pub retry_non_idempotent: bool,
    /// Credential refreshes per call.
    pub max_credential_refreshes: u32,
    /// Retries per service as a share of its calls (fleet-wide when the
    /// service's state is in Redis); `None`: no budget.
    pub retry_budget: Option<RetryBudget>,
    /// Attempts of this service in flight at once in this process (a
    /// bulkhead); `None`: no limit.
    pub in_flight: Option<InFlightLimit>,
    /// Extra attempts a plugin's hedge (contract 0.2) may start per
    /// attempt, at most; 0: never hedge.
    pub max_hedges: u32,
}

/// The bulkhead: how many attempts of a service may be in flight at once,
/// and how an attempt over the limit waits for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightLimit {
    /// Attempts in flight at once (at least 1).
    pub max: u32,
    /// Attempts that may wait for a slot at once; one more is rejected at
    /// once. 0: none wait.
    pub max_queued: u32,
    /// The longest an attempt waits for a slot before it is rejected (also
    /// bounded by the call's deadline).
    pub queue_timeout: Duration,
}

impl InFlightLimit {
    /// `max` in flight, none queued.
    pub fn new(max: u32) -> Self {
        InFlightLimit {
            max,
            max_queued: 0,
            // A queued attempt that has waited this long is better retried
            // or failed by the pipeline than kept.
            queue_timeout: Duration::from_secs(1),
        }
    }
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            // One try and three retries: Polly's and most clients' default,
            // and at most 4x the load on an upstream that is struggling.
            max_attempts: 4,
            // The MCP SDKs' own request timeout: wrapping a call never cuts
            // it shorter than its client would, but a hung call still ends.
            attempt_timeout: Some(Duration::from_secs(60)),
            // Two full attempt timeouts: room for a slow attempt plus
            // retries, yet an agent's step is never stuck for long.
            deadline: Some(Duration::from_secs(120)),
            // A single wait longer than this is better reported to the agent
            // than slept through.
            max_delay: Duration::from_secs(30),
            // Repeating a non-idempotent operation (create, send, pay) can
            // do it twice: only the configuration can allow that.
            retry_non_idempotent: false,
            // One refresh per call: a second 401 after a fresh token means
            // the credentials are wrong, not stale.
            max_credential_refreshes: 1,
            // Off unless configured: a budget makes retries depend on
            // other calls' history, which a single agent does not expect
            // by default; fleets should turn it on (README).
            retry_budget: None,
            // Off unless configured: what an upstream can take is not
            // something a default can know.
            in_flight: None,
            // Two hedges cut a long tail about as far as more would, at
            // most triple an idempotent call's load, and stay under the
            // default `max-attempts` with one attempt left for a retry.
            max_hedges: 2,
        }
    }
}

/// Optional guardrail settings as written in `mender.toml`; unset fields
/// inherit.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuardrailsToml {
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "setting::duration_or_off")]
    attempt_timeout: Option<Option<Duration>>,
    #[serde(default, deserialize_with = "setting::duration_or_off")]
    deadline: Option<Option<Duration>>,
    #[serde(default, with = "humantime_serde")]
    max_delay: Option<Duration>,
    retry_non_idempotent: Option<bool>,
    max_credential_refreshes: Option<u32>,
    retry_budget: Option<RetryBudgetToml>,
    max_in_flight: Option<u32>,
    max_queued: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    queue_timeout: Option<Duration>,
    max_hedges: Option<u32>,
}

impl GuardrailsToml {
    /// `base` with the fields set here replaced.
    pub(crate) fn apply(&self, base: &Guardrails) -> Result<Guardrails, String> {
        let g = Guardrails {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            attempt_timeout: self.attempt_timeout.unwrap_or(base.attempt_timeout),
            deadline: self.deadline.unwrap_or(base.deadline),
            max_delay: self.max_delay.unwrap_or(base.max_delay),
            retry_non_idempotent: self
                .retry_non_idempotent
                .unwrap_or(base.retry_non_idempotent),
            max_credential_refreshes: self
                .max_credential_refreshes
                .unwrap_or(base.max_credential_refreshes),
            retry_budget: match &self.retry_budget {
                Some(b) => b.resolve()?,
                None => base.retry_budget,
            },
            in_flight: self.in_flight(base.in_flight)?,
            max_hedges: self.max_hedges.unwrap_or(base.max_hedges),
        };
        if g.max_attempts == 0 {
            return Err("max-attempts must be at least 1".into());
        }
        Ok(g)
    }

    /// `max-in-flight` (0: no limit), `max-queued` and `queue-timeout` over
    /// the inherited bulkhead.
    fn in_flight(&self, base: Option<InFlightLimit>) -> Result<Option<InFlightLimit>, String> {
        let limit = match self.max_in_flight {
            Some(0) => None,
            Some(max) => Some(base.map_or(InFlightLimit::new(max), |b| InFlightLimit { max, ..b })),
            None => base,
        };
        let Some(mut limit) = limit else {
            if self.max_queued.is_some() || self.queue_timeout.is_some() {
                return Err("max-queued and queue-timeout need max-in-flight".into());
            }
            return Ok(None);
        };
        limit.max_queued = self.max_queued.unwrap_or(limit.max_queued);
        limit.queue_timeout = self.queue_timeout.unwrap_or(limit.queue_timeout);
        Ok(Some(limit))
    }
}

/// Why the host refused a retry a strategy asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryRefusal {
    /// The call already made `max_attempts` attempts.
    AttemptsExhausted(u32),
    /// The operation is not idempotent and retries of such are off.
    NotIdempotent,
    /// Waiting would end past the call's deadline.
    PastDeadline,
    /// The service's retry budget has no retry left in this window.
    BudgetExhausted {
        /// Retries taken in the window (fleet-wide on Redis).
        retries: i64,
        /// Calls counted in the window.
        calls: i64,
        /// The budget in force.
        budget: RetryBudget,
    },
}

impl std::fmt::Display for RetryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryRefusal::AttemptsExhausted(n) => write!(f, "max-attempts ({n}) reached"),
            RetryRefusal::NotIdempotent => {
                f.write_str("operation is not idempotent (retry-non-idempotent = false)")
            }
            RetryRefusal::PastDeadline => f.write_str("the wait would end past the deadline"),
            RetryRefusal::BudgetExhausted {
                retries,
                calls,
                budget,
            } => write!(
                f,
                "retry-budget exhausted ({retries} retries for {calls} calls in this {} window; \
                 percent {}, min-retries {})",
                humantime::format_duration(budget.window),
                budget.percent,
                budget.min_retries
            ),
        }
    }
}

impl Guardrails {
    /// How many hedges attempt `attempt` of a call may start, of the
    /// `granted` a plugin asked for: none for a non-idempotent operation
    /// (a hedge repeats it, and `retry-non-idempotent` is about retries
    /// after a failure, not about running it twice at once), at most
    /// `max-hedges`, and never past `max-attempts` (a hedge is an attempt).
    pub fn hedges(&self, idempotent: bool, granted: u32, attempt: u32) -> u32 {
        if !idempotent {
            return 0;
        }
        granted
            .min(self.max_hedges)
            .min(self.max_attempts.saturating_sub(attempt))
    }

    /// Checks a retry after attempt `attempt` (from 1) with the asked
    /// `delay`; returns the delay to actually wait (clamped to
    /// `max_delay`).
    pub fn check_retry(
        &self,
        attempt: u32,
        idempotent: bool,
        delay: Duration,
        deadline_left: Option<Duration>,
    ) -> Result<Duration, RetryRefusal> {
        if attempt >= self.max_attempts {
            return Err(RetryRefusal::AttemptsExhausted(self.max_attempts));
        }
        if !idempotent && !self.retry_non_idempotent {
            return Err(RetryRefusal::NotIdempotent);
        }
        let delay = delay.min(self.max_delay);
        if deadline_left.is_some_and(|left| delay >= left) {
            return Err(RetryRefusal::PastDeadline);
        }
        Ok(delay)
    }
}

mod setting {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    /// A humantime duration (`"250ms"`, `"30s"`), or `"off"` for none.
    pub(super) fn duration_or_off<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("off") {
            return Ok(Some(None));
        }
        humantime::parse_duration(&s)
            .map(|d| Some(Some(d)))
            .map_err(|e| D::Error::custom(format!("`{s}` is not a duration or \"off\": {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulkhead_is_configured_and_inherited() {
        let parse = |s: &str| toml::from_str::<GuardrailsToml>(s).unwrap();
        let base = Guardrails::default();
        let g = parse("max-in-flight = 8\nmax-queued = 100")
            .apply(&base)
            .unwrap();
        let limit = g.in_flight.unwrap();
        assert_eq!((limit.max, limit.max_queued), (8, 100));
        assert_eq!(limit.queue_timeout, Duration::from_secs(1));
        // A service changes one key and keeps the others; 0 turns it off.
        let service = parse("queue-timeout = \"50ms\"").apply(&g).unwrap();
        let limit = service.in_flight.unwrap();
        assert_eq!((limit.max, limit.max_queued), (8, 100));
        assert_eq!(limit.queue_timeout, Duration::from_millis(50));
        assert_eq!(
            parse("max-in-flight = 0").apply(&g).unwrap().in_flight,
            None
        );
        let e = parse("max-queued = 3").apply(&base).unwrap_err();
        assert!(e.contains("need max-in-flight"), "{e}");
    }

    #[test]
    fn hedges_are_bounded() {
        let g = Guardrails::default();
        assert_eq!(g.hedges(true, 1, 1), 1);
        assert_eq!(g.hedges(true, 5, 1), 2, "max-hedges caps the grant");
        assert_eq!(g.hedges(false, 1, 1), 0, "never a non-idempotent call");
        assert_eq!(g.hedges(true, 2, 3), 1, "max-attempts (4) caps it too");
        assert_eq!(g.hedges(true, 2, 4), 0);
        let parse = |s: &str| toml::from_str::<GuardrailsToml>(s).unwrap();
        let off = parse("max-hedges = 0").apply(&g).unwrap();
        assert_eq!(off.hedges(true, 1, 1), 0, "0: never");
        let service = parse("max-attempts = 10").apply(&off).unwrap();
        assert_eq!(service.max_hedges, 0, "inherited");
    }

    #[test]
    fn retries_are_bounded() {
        let g = Guardrails::default();
        let s = Duration::from_secs;
        assert_eq!(g.check_retry(1, true, s(1), None), Ok(s(1)));
        assert_eq!(g.check_retry(1, true, s(3600), None), Ok(g.max_delay));
        assert_eq!(
            g.check_retry(4, true, s(1), None),
            Err(RetryRefusal::AttemptsExhausted(4))
        );
        assert_eq!(
            g.check_retry(1, false, s(1), None),
            Err(RetryRefusal::NotIdempotent)
        );
        assert_eq!(
            g.check_retry(1, true, s(5), Some(s(5))),
            Err(RetryRefusal::PastDeadline)
        );
    }
}
