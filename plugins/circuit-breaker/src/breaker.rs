//! The breaker's state machine, over a [`Store`] and an explicit `now`, so
//! it runs the same against the host and in unit tests.
//!
//! State keys (scoped by the host to this plugin and the service):
//!
//! * `circuit`: `closed:<epoch>` (absent means `closed:0`), `open:<since>`
//!   or `half-open:<since>`. Every transition is a compare-and-swap on it,
//!   so concurrent instances agree on one winner.
//! * `streak:<epoch>`: counted failures in a row while closed.
//! * `calls:<epoch>:<bucket>`, `fails:<epoch>:<bucket>`: the ratio window
//!   (see [`crate::window`]).
//! * `probes:<since>`: probes taken while half-open, by atomic increment.

use mender_guest::prelude::*;
use mender_guest::state::Store;

use crate::config::Config;
use crate::slow::SlowCalls;
use crate::window::{Totals, Window};

/// The key holding the circuit's state.
const CIRCUIT: &str = "circuit";

/// The circuit's state, as stored at [`CIRCUIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Circuit {
    /// Attempts flow. `epoch` is when it closed; it names this period's
    /// counters.
    Closed { epoch: u64 },
    /// Attempts are rejected until `since + open-for`.
    Open { since: u64 },
    /// A few probes may go through; their outcome decides.
    HalfOpen { since: u64 },
}

impl Circuit {
    /// Read the stored value; absent or unreadable means a fresh circuit.
    fn parse(stored: Option<&str>) -> Circuit {
        let parsed = stored.and_then(|text| {
            let (state, time) = text.split_once(':')?;
            let time = time.parse().ok()?;
            match state {
                "closed" => Some(Circuit::Closed { epoch: time }),
                "open" => Some(Circuit::Open { since: time }),
                "half-open" => Some(Circuit::HalfOpen { since: time }),
                _ => None,
            }
        });
        parsed.unwrap_or(Circuit::Closed { epoch: 0 })
    }

    fn encode(self) -> String {
        match self {
            Circuit::Closed { epoch } => format!("closed:{epoch}"),
            Circuit::Open { since } => format!("open:{since}"),
            Circuit::HalfOpen { since } => format!("half-open:{since}"),
        }
    }
}

/// A change of state, for the plugin to log and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Closed -> open, with why (e.g. `5 consecutive failures`).
    Opened(String),
    /// Open -> half-open, letting this many probes through.
    HalfOpened(u32),
    /// Half-open -> closed: a probe succeeded.
    Closed,
    /// Half-open -> open: a probe failed.
    Reopened,
}

/// The answer to one `admit`, and the transitions it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What to tell the host.
    pub admission: Admission,
    /// What changed, in order.
    pub transitions: Vec<Transition>,
}

/// A validated config, ready to judge.
#[derive(Debug)]
pub struct Breaker {
    failure_threshold: u32,
    failure_ratio: Option<f64>,
    window: Window,
    window_span: Millis,
    minimum_calls: u64,
    open_for: u64,
    half_open_probes: u32,
    counted_kinds: Vec<ErrorKind>,
    lease: u64,
    slow: Option<SlowCalls>,
}

/// How many times `admit` re-reads the state after losing a race for a
/// transition before it gives up and lets the attempt through.
const MAX_RACES: usize = 3;

impl Breaker {
    /// Validate `config`.
    pub fn new(config: &Config) -> Result<Breaker, String> {
        config.validate()?;
        Ok(Breaker {
            failure_threshold: config.failure_threshold,
            failure_ratio: config.failure_ratio,
            window: Window::new(config.window.get()),
            window_span: config.window,
            minimum_calls: u64::from(config.minimum_calls),
            open_for: config.open_for.get(),
            half_open_probes: config.half_open_probes,
            counted_kinds: config.counted_kinds.clone(),
            lease: config.lease.get(),
            slow: SlowCalls::new(config),
        })
    }

    /// The slow-call threshold the host counts slow calls against.
    pub fn slow_call_threshold(&self) -> Option<u64> {
        self.slow.as_ref().map(SlowCalls::threshold)
    }

    /// May an attempt start at `now`, given what happened since the last
    /// call (`recent`)?
    pub fn admit(&self, store: &dyn Store, now: u64, recent: &Outcomes) -> Verdict {
        let mut transitions = Vec::new();
        let mut recent = recent.clone();
        for _ in 0..MAX_RACES {
            let stored = store.get(CIRCUIT);
            let step = match Circuit::parse(stored.as_deref()) {
                Circuit::Closed { epoch } => self.closed(store, now, &recent, epoch),
                Circuit::Open { since } => self.open(now, since),
                Circuit::HalfOpen { since } => self.half_open(store, now, &recent, since),
            };
            let (to, transition, then) = match step {
                Step::Answer(admission) => {
                    return Verdict {
                        admission,
                        transitions,
                    };
                }
                Step::Move {
                    to,
                    transition,
                    then,
                } => (to, transition, then),
            };
            if store.compare_and_swap(CIRCUIT, stored.as_deref(), &to.encode(), None) {
                if let Circuit::Open { .. } = to {
                    self.forget_closed_period(store, stored.as_deref());
                }
                transitions.push(transition);
                if let Some(admission) = then {
                    return Verdict {
                        admission,
                        transitions,
                    };
                }
            }
            // Either we moved and must now act in the new state, or another
            // instance moved first: read again. The outcomes are accounted
            // for already either way.
            recent = Outcomes::default();
        }
        // Lost every race: another instance is busy moving the circuit. Let
        // this attempt through unleased rather than fail it on a technicality.
        Verdict {
            admission: Admission::allow(),
            transitions,
        }
    }

    /// Closed: account `recent`, then trip or allow.
    fn closed(&self, store: &dyn Store, now: u64, recent: &Outcomes, epoch: u64) -> Step {
        let counted = u64::from(recent.failures_among(&self.counted_kinds));
        let successes = u64::from(recent.successes);
        let streak = self.update_streak(store, recent, counted, epoch);
        if self.failure_threshold > 0 && streak >= u64::from(self.failure_threshold) {
            return self.trip(now, format!("{streak} consecutive failures"));
        }
        if let Some(slow) = &self.slow {
            let slow_calls = if successes > 0 {
                recent.slow_calls()
            } else {
                0
            };
            let calls = successes + counted;
            if let Some(why) = slow.judge(store, now, epoch, calls, u64::from(slow_calls)) {
                return self.trip(now, why);
            }
        }
        if let Some(ratio) = self.failure_ratio {
            self.window
                .record(store, now, epoch, successes + counted, counted);
            // The ratio only rises with a failure: judge it only then, which
            // spares the reads on the (common) all-success reports.
            if counted > 0 {
                let Totals { calls, fails } = self.window.totals(store, now, epoch);
                if calls >= self.minimum_calls && fails as f64 >= ratio * calls as f64 {
                    return self.trip(
                        now,
                        format!(
                            "{fails} of {calls} calls failed in the last {} (failure-ratio {ratio})",
                            self.window_span
                        ),
                    );
                }
            }
        }
        Step::Answer(self.closed_admission())
    }

    /// The counted failures in a row, after `recent`, across every process
    /// sharing this state. Uncounted failures neither add to nor break a
    /// streak.
    ///
    /// The streak is one atomic counter: each process adds the failures it
    /// saw, so with state on Redis a fleet opens the circuit after
    /// `failure-threshold` failures in all, not that many per process. A
    /// success anywhere breaks the streak: the reporting process sets it to
    /// the failures that came after its success (the host's
    /// `consecutive-failures`, which is per process, bounds only those).
    fn update_streak(&self, store: &dyn Store, recent: &Outcomes, counted: u64, epoch: u64) -> u64 {
        if self.failure_threshold == 0 {
            return 0;
        }
        let key = format!("streak:{epoch}");
        if recent.successes > 0 {
            let streak = counted.min(u64::from(recent.consecutive_failures));
            store.set_u64(&key, streak, None);
            return streak;
        }
        if counted == 0 {
            return store.get_u64(&key).unwrap_or(0);
        }
        let streak = store.increment(&key, i64::try_from(counted).unwrap_or(i64::MAX), None);
        u64::try_from(streak).unwrap_or(0)
    }

    fn trip(&self, now: u64, reason: String) -> Step {
        Step::Move {
            to: Circuit::Open { since: now },
            transition: Transition::Opened(reason),
            then: Some(self.open_admission(self.open_for)),
        }
    }

    /// Open: reject until `open-for` has passed, then go half-open.
    fn open(&self, now: u64, since: u64) -> Step {
        let open_for = now.saturating_sub(since);
        if open_for < self.open_for {
            return Step::Answer(self.open_admission(self.open_for - open_for));
        }
        // Outcomes reported now belong to attempts started before the
        // circuit opened: they say nothing about recovery, so they are
        // dropped, and the probes decide.
        Step::Move {
            to: Circuit::HalfOpen { since: now },
            transition: Transition::HalfOpened(self.half_open_probes),
            then: None,
        }
    }

    /// Half-open: a probe's outcome decides; otherwise hand out probes.
    fn half_open(&self, store: &dyn Store, now: u64, recent: &Outcomes, since: u64) -> Step {
        if recent.failures_among(&self.counted_kinds) > 0 {
            return Step::Move {
                to: Circuit::Open { since: now },
                transition: Transition::Reopened,
                then: Some(self.open_admission(self.open_for)),
            };
        }
        if crate::probe::succeeded(recent, since) {
            return Step::Move {
                // `now` is past every earlier epoch, so the new period's
                // counters start empty.
                to: Circuit::Closed { epoch: now },
                transition: Transition::Closed,
                then: Some(self.closed_admission()),
            };
        }
        // A probe whose outcome never counts (an auth error, say) would hold
        // its slot forever: the counter expires after `open-for`, and a new
        // round of probes starts.
        let taken = store.increment(&format!("probes:{since}"), 1, Some(self.open_for));
        if taken <= i64::from(self.half_open_probes) {
            // No lease: every attempt must ask while the circuit is unsure.
            Step::Answer(Admission::allow_with_permit(crate::probe::permit(
                since, taken,
            )))
        } else {
            Step::Answer(Admission::reject(
                "circuit half-open: waiting for a probe's outcome",
                None,
            ))
        }
    }

    fn closed_admission(&self) -> Admission {
        if self.lease == 0 {
            return Admission::allow();
        }
        Admission::allow_with_lease(Lease {
            ttl: self.lease,
            max_attempts: None,
            until_failure: true,
        })
    }

    fn open_admission(&self, left: u64) -> Admission {
        Admission::reject("circuit open", Some(left))
    }

    /// Drop the closed period's streak once the circuit opens; its window
    /// buckets expire on their own.
    fn forget_closed_period(&self, store: &dyn Store, stored: Option<&str>) {
        if let Circuit::Closed { epoch } = Circuit::parse(stored) {
            store.delete(&format!("streak:{epoch}"));
        }
    }
}

/// What one state's handler decided.
enum Step {
    /// Answer without changing state.
    Answer(Admission),
    /// Move to `to`; then answer `then`, or, if `None`, handle the attempt
    /// in the new state.
    Move {
        to: Circuit,
        transition: Transition,
        then: Option<Admission>,
    },
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
