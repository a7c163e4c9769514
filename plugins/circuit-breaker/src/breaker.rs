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
use mender_guest::state::{LastSeen, Op, OpResult, Store};

use crate::config::Config;
use crate::ops::{Ops, count, delta};
use crate::slow::{SlowCalls, SlowReads};
use crate::window::{Reads, Totals, Window};

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
    /// The circuit last seen, per service (`None`: absent), which each
    /// decision's batch expects: a stale guess costs one more round trip,
    /// never a wrong answer.
    known: LastSeen,
}

/// How many batches `admit` sends before it gives up on a circuit other
/// instances keep moving and lets the attempt through: a stale guess, a
/// transition, and a race lost for it each take one.
const MAX_RACES: usize = 4;

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
            known: LastSeen::default(),
        })
    }

    /// The slow-call threshold the host counts slow calls against.
    pub fn slow_call_threshold(&self) -> Option<u64> {
        self.slow.as_ref().map(SlowCalls::threshold)
    }

    /// May an attempt on `service` start at `now`, given what happened
    /// since the last call (`recent`)?
    ///
    /// One `state.batch` per decision (contract 0.2): it starts with an
    /// `expect` of the circuit this instance last saw for the service, then
    /// the state's reads and writes. When the guess holds (the usual case),
    /// that is the only round trip; when another instance or process moved
    /// the circuit, nothing else in the batch ran, the answer carries the
    /// circuit found, and the breaker decides again from it. A transition
    /// is one more batch.
    pub fn admit(&self, store: &dyn Store, service: &str, now: u64, recent: &Outcomes) -> Verdict {
        let mut transitions = Vec::new();
        let mut recent = recent.clone();
        let mut stored = self.known.get(service);
        for _ in 0..MAX_RACES {
            let circuit = Circuit::parse(stored.as_deref());
            let mut ops = Ops::default();
            ops.push(Op::expect(CIRCUIT, stored.as_deref()));
            let planned = match circuit {
                Circuit::Closed { epoch } => {
                    Planned::Closed(self.plan_closed(&mut ops, now, &recent, epoch))
                }
                Circuit::Open { since } => Planned::Decided(self.open(now, since)),
                Circuit::HalfOpen { since } => self.plan_half_open(&mut ops, now, &recent, since),
            };
            let results = ops.run(store);
            match results.first() {
                Some(OpResult::Done) => {}
                // Moved by someone else: nothing of this batch ran, so
                // `recent` is still to be counted, in the state found.
                Some(OpResult::Value(found)) => {
                    stored = found.clone();
                    continue;
                }
                _ => {
                    stored = store.get(CIRCUIT);
                    continue;
                }
            }
            self.known.set(service, stored.clone());
            // `recent` is counted now, whatever happens next.
            recent = Outcomes::default();
            let step = match planned {
                Planned::Decided(step) => step,
                Planned::Closed(plan) => self.judge_closed(plan, &results, now),
                Planned::Probe { at, since } => self.probe(count(&results, at), since),
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
            let mut ops = Ops::default();
            ops.push(Op::expect(CIRCUIT, stored.as_deref()));
            ops.push(Op::set(CIRCUIT, &to.encode(), None));
            // Opening drops the closed period's streak; its window buckets
            // expire on their own.
            if let (Circuit::Open { .. }, Circuit::Closed { epoch }) = (to, circuit) {
                ops.push(Op::delete(&format!("streak:{epoch}")));
            }
            match ops.run(store).first() {
                Some(OpResult::Done) => {
                    stored = Some(to.encode());
                    self.known.set(service, stored.clone());
                    transitions.push(transition);
                    if let Some(admission) = then {
                        return Verdict {
                            admission,
                            transitions,
                        };
                    }
                }
                // Another instance moved first: act in the state it chose.
                Some(OpResult::Value(found)) => stored = found.clone(),
                _ => stored = store.get(CIRCUIT),
            }
        }
        // Lost every race: another instance is busy moving the circuit. Let
        // this attempt through unleased rather than fail it on a technicality.
        self.known.forget(service);
        Verdict {
            admission: Admission::allow(),
            transitions,
        }
    }

    /// Closed: count `recent` and read what judging it needs, in `ops`.
    fn plan_closed(&self, ops: &mut Ops, now: u64, recent: &Outcomes, epoch: u64) -> ClosedPlan {
        let counted = u64::from(recent.failures_among(&self.counted_kinds));
        let successes = u64::from(recent.successes);
        let streak = self.plan_streak(ops, recent, counted, epoch);
        let slow = self.slow.as_ref().and_then(|slow| {
            let slow_calls = if successes > 0 {
                recent.slow_calls()
            } else {
                0
            };
            slow.plan(ops, now, epoch, successes + counted, u64::from(slow_calls))
        });
        let ratio = self.failure_ratio.and_then(|_| {
            self.window
                .record(ops, now, epoch, successes + counted, counted);
            // The ratio only rises with a failure: read it only then, which
            // spares the reads on the (common) all-success reports.
            (counted > 0).then(|| self.window.read(ops, now, epoch))
        });
        ClosedPlan {
            streak,
            slow,
            ratio,
        }
    }

    /// Closed: trip or allow, from what the batch counted and read.
    fn judge_closed(&self, plan: ClosedPlan, results: &[OpResult], now: u64) -> Step {
        let streak = match plan.streak {
            Streak::Known(n) => n,
            Streak::At(i) => count(results, i),
        };
        if self.failure_threshold > 0 && streak >= u64::from(self.failure_threshold) {
            return self.trip(now, format!("{streak} consecutive failures"));
        }
        if let (Some(slow), Some(reads)) = (&self.slow, plan.slow)
            && let Some(why) = slow.judge(reads, results)
        {
            return self.trip(now, why);
        }
        if let (Some(ratio), Some(reads)) = (self.failure_ratio, plan.ratio) {
            let Totals { calls, fails } = reads.totals(results);
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
    fn plan_streak(&self, ops: &mut Ops, recent: &Outcomes, counted: u64, epoch: u64) -> Streak {
        if self.failure_threshold == 0 {
            return Streak::Known(0);
        }
        let key = format!("streak:{epoch}");
        if recent.successes > 0 {
            let streak = counted.min(u64::from(recent.consecutive_failures));
            ops.push(Op::set(&key, &streak.to_string(), None));
            return Streak::Known(streak);
        }
        if counted == 0 {
            return Streak::At(ops.push(Op::get(&key)));
        }
        Streak::At(ops.push(Op::increment(&key, delta(counted), None)))
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

    /// Half-open: a probe's outcome decides; otherwise take a probe, in
    /// `ops`.
    fn plan_half_open(&self, ops: &mut Ops, now: u64, recent: &Outcomes, since: u64) -> Planned {
        if recent.failures_among(&self.counted_kinds) > 0 {
            return Planned::Decided(Step::Move {
                to: Circuit::Open { since: now },
                transition: Transition::Reopened,
                then: Some(self.open_admission(self.open_for)),
            });
        }
        if crate::probe::succeeded(recent, since) {
            return Planned::Decided(Step::Move {
                // `now` is past every earlier epoch, so the new period's
                // counters start empty.
                to: Circuit::Closed { epoch: now },
                transition: Transition::Closed,
                then: Some(self.closed_admission()),
            });
        }
        // A probe whose outcome never counts (an auth error, say) would hold
        // its slot forever: the counter expires after `open-for`, and a new
        // round of probes starts.
        let key = format!("probes:{since}");
        let at = ops.push(Op::increment(&key, 1, Some(self.open_for)));
        Planned::Probe { at, since }
    }

    /// Half-open: the `taken`th probe of the period goes through, if there
    /// is one left.
    fn probe(&self, taken: u64, since: u64) -> Step {
        if taken <= u64::from(self.half_open_probes) {
            // No lease: every attempt must ask while the circuit is unsure.
            let taken = i64::try_from(taken).unwrap_or(i64::MAX);
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
}

/// What a state planned before its batch ran.
enum Planned {
    /// Decided without reading anything.
    Decided(Step),
    /// Closed: what the batch counts and reads for the judgment.
    Closed(ClosedPlan),
    /// Half-open: the probe counter's new value is at `at`.
    Probe { at: usize, since: u64 },
}

/// The closed state's reads and writes, and where their results are.
struct ClosedPlan {
    streak: Streak,
    slow: Option<SlowReads>,
    ratio: Option<Reads>,
}

/// The streak after a report: known without reading, or at a result.
enum Streak {
    Known(u64),
    At(usize),
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
