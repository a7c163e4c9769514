use std::cell::Cell;

use mender_guest::testing::MemoryStore;

use super::*;

fn breaker(json: &str) -> Breaker {
    Breaker::new(&mender_guest::config::parse(json).unwrap()).unwrap()
}

/// `n` failures of `kind` reported at once, all in a row.
fn failures(kind: ErrorKind, n: u32, in_a_row: u32) -> Outcomes {
    let mut recent = Outcomes::default().with_failures_by_kind(vec![(kind, n)]);
    recent.failures = n;
    recent.consecutive_failures = in_a_row;
    recent
}

fn successes(n: u32) -> Outcomes {
    let mut recent = Outcomes::default()
        .with_permitted_successes(Vec::new())
        .with_slow_calls(0);
    recent.successes = n;
    recent
}

/// A probe's permit in the half-open period that began at `since`.
fn probe(since: u64, taken: i64) -> Admission {
    Admission::allow_with_permit(crate::probe::permit(since, taken))
}

fn leased(ttl: u64) -> Admission {
    Admission::allow_with_lease(Lease {
        ttl,
        max_attempts: None,
        until_failure: true,
    })
}

fn rejected(reason: &str, retry_after: Option<u64>) -> Admission {
    Admission::reject(reason, retry_after)
}

/// Drive `breaker` to open with 5 timeouts at `store.now()`.
fn open(breaker: &Breaker, store: &MemoryStore) {
    let verdict = breaker.admit(
        store,
        "svc",
        store.now(),
        &failures(ErrorKind::Timeout, 5, 5),
    );
    assert_eq!(verdict.admission, rejected("circuit open", Some(30_000)));
}

#[test]
fn closed_circuit_allows_with_a_lease_until_failure() {
    let store = MemoryStore::new();
    let verdict = breaker("{}").admit(&store, "svc", 0, &Outcomes::default());
    assert_eq!(verdict.admission, leased(5_000));
    assert!(verdict.transitions.is_empty());
    let verdict = breaker(r#"{"lease": 0}"#).admit(&store, "svc", 0, &Outcomes::default());
    assert_eq!(verdict.admission, Admission::allow());
}

#[test]
fn opens_after_the_threshold_of_consecutive_failures() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    for n in 1..5 {
        let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Connect, 1, n));
        assert_eq!(verdict.admission, leased(5_000), "after {n} failures");
    }
    let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Connect, 1, 5));
    assert_eq!(verdict.admission, rejected("circuit open", Some(30_000)));
    assert_eq!(
        verdict.transitions,
        [Transition::Opened("5 consecutive failures".into())]
    );
    assert_eq!(store.get("circuit").as_deref(), Some("open:0"));
    assert!(store.get("streak:0").is_none(), "the streak is forgotten");
}

#[test]
fn uncounted_kinds_neither_trip_nor_break_the_streak() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 4, 4));
    let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Auth, 10, 14));
    assert_eq!(verdict.admission, leased(5_000));
    let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 1, 15));
    assert_eq!(
        verdict.transitions,
        [Transition::Opened("5 consecutive failures".into())]
    );
}

#[test]
fn a_success_ends_the_streak() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 4, 4));
    // 3 timeouts and a success; the host says 2 failures came after it.
    let mut mixed = failures(ErrorKind::Timeout, 3, 2);
    mixed.successes = 1;
    breaker.admit(&store, "svc", 0, &mixed);
    assert_eq!(store.get_u64("streak:0"), Some(2));
    breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 2, 4));
    let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 1, 5));
    assert_eq!(verdict.transitions.len(), 1);
}

/// Processes sharing one store (state on Redis) pool their failures: each
/// reports only its own, with its own (smaller) `consecutive-failures`, and
/// the circuit opens once the fleet has seen `failure-threshold` in all.
#[test]
fn the_streak_is_shared_by_every_process() {
    let store = MemoryStore::new();
    let fleet: Vec<Breaker> = (0..3).map(|_| breaker("{}")).collect();
    // 5 failures in all: 2 + 2 + 1, no process with more than 2 in a row.
    let mut opened = 0;
    for (process, n) in [(0, 2), (1, 2), (2, 1)] {
        opened += fleet[process]
            .admit(&store, "svc", 0, &failures(ErrorKind::Timeout, n, n))
            .transitions
            .len();
    }
    assert_eq!(
        opened, 1,
        "the fifth failure in the fleet opens the circuit"
    );
    let verdict = fleet[1].admit(&store, "svc", 0, &Outcomes::default());
    assert_eq!(verdict.admission, rejected("circuit open", Some(30_000)));
}

/// A success in any process breaks the fleet's streak.
#[test]
fn a_success_anywhere_breaks_the_shared_streak() {
    let store = MemoryStore::new();
    let (a, b) = (breaker("{}"), breaker("{}"));
    a.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 4, 4));
    b.admit(&store, "svc", 0, &successes(1));
    assert_eq!(store.get_u64("streak:0"), Some(0));
    let verdict = a.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 1, 5));
    assert!(verdict.transitions.is_empty(), "{:?}", verdict.transitions);
}

#[test]
fn open_rejects_with_the_time_left() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    open(&breaker, &store);
    store.advance(12_000);
    let verdict = breaker.admit(&store, "svc", store.now(), &successes(3));
    assert_eq!(verdict.admission, rejected("circuit open", Some(18_000)));
    assert!(verdict.transitions.is_empty());
}

#[test]
fn half_open_admits_exactly_the_probes_without_a_lease() {
    let store = MemoryStore::new();
    let breaker = breaker(r#"{"half-open-probes": 2}"#);
    open(&breaker, &store);
    store.advance(30_000);
    // Outcomes of attempts from before the circuit opened are dropped.
    let verdict = breaker.admit(&store, "svc", store.now(), &successes(1));
    assert_eq!(verdict.admission, probe(30_000, 1));
    assert_eq!(verdict.transitions, [Transition::HalfOpened(2)]);
    let verdict = breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    assert_eq!(verdict.admission, probe(30_000, 2));
    let verdict = breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    assert_eq!(
        verdict.admission,
        rejected("circuit half-open: waiting for a probe's outcome", None)
    );
}

#[test]
fn a_successful_probe_closes_the_circuit_with_fresh_counters() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    open(&breaker, &store);
    store.advance(30_000);
    breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    store.advance(100);
    // A success from an attempt admitted before the circuit opened (no
    // permit) does not close it; the probe's does.
    let verdict = breaker.admit(&store, "svc", store.now(), &successes(1));
    assert_eq!(
        verdict.admission,
        rejected("circuit half-open: waiting for a probe's outcome", None)
    );
    let mut probed = successes(1).with_permitted_successes(vec![crate::probe::permit(30_000, 1)]);
    probed.successes = 1;
    let verdict = breaker.admit(&store, "svc", store.now(), &probed);
    assert_eq!(verdict.admission, leased(5_000));
    assert_eq!(verdict.transitions, [Transition::Closed]);
    assert_eq!(store.get("circuit").as_deref(), Some("closed:30100"));
    // It takes a full new streak to open again.
    let verdict = breaker.admit(
        &store,
        "svc",
        store.now(),
        &failures(ErrorKind::Timeout, 4, 4),
    );
    assert_eq!(verdict.admission, leased(5_000));
}

#[test]
fn a_failed_probe_reopens_the_circuit() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    open(&breaker, &store);
    store.advance(30_000);
    breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    store.advance(500);
    let verdict = breaker.admit(
        &store,
        "svc",
        store.now(),
        &failures(ErrorKind::Connect, 1, 6),
    );
    assert_eq!(verdict.admission, rejected("circuit open", Some(30_000)));
    assert_eq!(verdict.transitions, [Transition::Reopened]);
    assert_eq!(store.get("circuit").as_deref(), Some("open:30500"));
}

#[test]
fn a_probe_that_never_counts_frees_its_slot_after_open_for() {
    let store = MemoryStore::new();
    let breaker = breaker("{}");
    open(&breaker, &store);
    store.advance(30_000);
    breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    // The probe failed with an auth error: neither success nor counted.
    let verdict = breaker.admit(&store, "svc", store.now(), &failures(ErrorKind::Auth, 1, 6));
    assert!(matches!(verdict.admission, Admission::Reject(_)));
    store.advance(30_000);
    let verdict = breaker.admit(&store, "svc", store.now(), &Outcomes::default());
    assert_eq!(verdict.admission, probe(30_000, 1));
}

#[test]
fn opens_on_the_failure_ratio_once_the_window_has_enough_calls() {
    let store = MemoryStore::new();
    let breaker = breaker(
        r#"{"failure-threshold": 0, "failure-ratio": 0.5, "minimum-calls": 10, "window": "10s"}"#,
    );
    let verdict = breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 5, 5));
    assert_eq!(
        verdict.admission,
        leased(5_000),
        "5 calls are below minimum-calls"
    );
    let verdict = breaker.admit(&store, "svc", 1_000, &successes(5));
    assert!(verdict.transitions.is_empty(), "a success never trips");
    let verdict = breaker.admit(&store, "svc", 2_000, &failures(ErrorKind::Timeout, 1, 1));
    assert_eq!(
        verdict.transitions,
        [Transition::Opened(
            "6 of 11 calls failed in the last 10s (failure-ratio 0.5)".into()
        )]
    );
}

#[test]
fn old_calls_leave_the_ratio_window() {
    let store = MemoryStore::new();
    let breaker = breaker(r#"{"failure-threshold": 0, "failure-ratio": 0.5, "minimum-calls": 4}"#);
    breaker.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 3, 3));
    // 11s later those three failures are outside the 10s window.
    let verdict = breaker.admit(&store, "svc", 11_000, &successes(3));
    assert!(verdict.transitions.is_empty());
    let verdict = breaker.admit(&store, "svc", 11_000, &failures(ErrorKind::Timeout, 1, 1));
    assert_eq!(verdict.admission, leased(5_000), "1 of 4 calls failed");
}

/// A store in which another instance opens the circuit between our
/// decision (the first batch) and our transition (the second).
struct RacingStore {
    inner: MemoryStore,
    batches: Cell<u32>,
}

impl Store for RacingStore {
    fn get(&self, key: &str) -> Option<String> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        self.inner.set(key, value, ttl);
    }
    fn delete(&self, key: &str) {
        self.inner.delete(key);
    }
    fn increment(&self, key: &str, delta: i64, ttl: Option<u64>) -> i64 {
        self.inner.increment(key, delta, ttl)
    }
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<u64>,
    ) -> bool {
        self.inner.compare_and_swap(key, expected, value, ttl)
    }
    fn batch(&self, ops: &[Op]) -> Vec<OpResult> {
        self.batches.set(self.batches.get() + 1);
        if self.batches.get() == 2 {
            self.inner.set(CIRCUIT, "open:0", None);
        }
        self.inner.batch(ops)
    }
}

#[test]
fn losing_a_race_to_open_rejects_without_a_second_transition() {
    let store = RacingStore {
        inner: MemoryStore::new(),
        batches: Cell::new(0),
    };
    let verdict = breaker("{}").admit(&store, "svc", 10, &failures(ErrorKind::Timeout, 5, 5));
    assert_eq!(verdict.admission, rejected("circuit open", Some(29_990)));
    assert!(verdict.transitions.is_empty());
}

#[test]
fn an_unreadable_state_counts_as_a_fresh_circuit() {
    assert_eq!(Circuit::parse(None), Circuit::Closed { epoch: 0 });
    assert_eq!(Circuit::parse(Some("open")), Circuit::Closed { epoch: 0 });
    assert_eq!(
        Circuit::parse(Some("half-open:7")),
        Circuit::HalfOpen { since: 7 }
    );
    for circuit in [
        Circuit::Closed { epoch: 3 },
        Circuit::Open { since: 4 },
        Circuit::HalfOpen { since: 5 },
    ] {
        assert_eq!(Circuit::parse(Some(&circuit.encode())), circuit);
    }
}

#[test]
fn a_decision_is_one_round_trip_and_a_transition_one_more() {
    let store = MemoryStore::new();
    let b = breaker(r#"{"lease": 0, "failure-ratio": 0.9, "minimum-calls": 100}"#);
    let trips = |verdict: Verdict, expected: u32| {
        assert_eq!(store.take_trips(), expected, "{verdict:?}");
    };
    // Closed: the streak, the ratio window's counters and its 20 reads,
    // all in one batch.
    trips(b.admit(&store, "svc", 0, &successes(3)), 1);
    trips(
        b.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 1, 1)),
        1,
    );
    // Tripping: the decision, then the transition.
    let verdict = b.admit(&store, "svc", 0, &failures(ErrorKind::Timeout, 4, 5));
    assert_eq!(verdict.admission, rejected("circuit open", Some(30_000)));
    trips(verdict, 2);
    // Open: one batch confirms the circuit it remembers.
    trips(b.admit(&store, "svc", 1_000, &Outcomes::default()), 1);
    // Another process (another breaker, its own guess) reads it in two:
    // its guess of a closed circuit fails, and the batch says what is there.
    let other = breaker(r#"{"lease": 0}"#);
    let verdict = other.admit(&store, "svc", 1_000, &Outcomes::default());
    assert_eq!(verdict.admission, rejected("circuit open", Some(29_000)));
    trips(verdict, 2);
}
