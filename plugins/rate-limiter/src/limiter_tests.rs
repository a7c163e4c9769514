use mender_guest::testing::{MemoryStore, error_event};

use super::*;

fn limiter(json: &str) -> Limiter {
    Limiter::new(&mender_guest::config::parse(json).unwrap()).unwrap()
}

fn allowed(a: &Admission) -> bool {
    matches!(a, Admission::Allow(_))
}

#[test]
fn burst_then_steady_rate() {
    let l = limiter(r#"{"rate": 10, "per": "1s", "max-wait": 0}"#);
    let s = MemoryStore::new();
    s.advance(1_000);
    let burst = (0..20).filter(|_| allowed(&l.admit(&s, s.now()))).count();
    assert_eq!(burst, 10, "a full bucket allows `burst` (= rate) at once");
    // One interval (100 ms) later, exactly one more.
    s.advance(100);
    assert!(allowed(&l.admit(&s, s.now())));
    assert!(!allowed(&l.admit(&s, s.now())));
    // Over 1 s at one attempt per 10 ms, about `rate` get through.
    let mut got = 0;
    for _ in 0..100 {
        s.advance(10);
        got += usize::from(allowed(&l.admit(&s, s.now())));
    }
    assert!((9..=11).contains(&got), "{got}");
}

#[test]
fn waits_when_close_rejects_when_far() {
    let l = limiter(r#"{"rate": 2, "per": "1s", "burst": 1, "max-wait": "600ms"}"#);
    let s = MemoryStore::new();
    s.advance(5_000);
    assert!(allowed(&l.admit(&s, s.now())));
    assert_eq!(l.admit(&s, s.now()), Admission::Wait(500));
    let never_wait = limiter(r#"{"rate": 2, "per": "1s", "burst": 1, "max-wait": 0}"#);
    match never_wait.admit(&s, s.now()) {
        Admission::Reject(r) => {
            assert_eq!(r.retry_after, Some(500));
            assert_eq!(r.reason, "rate limit");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn upstream_hint_pauses_then_resumes_without_burst() {
    let l = limiter(r#"{"rate": 10, "per": "1s", "max-wait": 0}"#);
    let s = MemoryStore::new();
    s.advance(1_000);
    let mut event = error_event(ErrorKind::RateLimited, 1);
    event.retry_after = Some(2_000);
    let pause = hinted_pause(&event).unwrap();
    assert_eq!(pause, 2_000);
    l.pause(&s, s.now(), pause);
    s.advance(1_999);
    assert!(!allowed(&l.admit(&s, s.now())), "paused until the hint");
    s.advance(1);
    assert!(allowed(&l.admit(&s, s.now())));
    assert!(
        !allowed(&l.admit(&s, s.now())),
        "after a pause, the steady rate, not a burst"
    );
    // A shorter hint does not shorten the pause in force.
    l.pause(&s, s.now(), 5_000);
    l.pause(&s, s.now(), 10);
    s.advance(4_000);
    assert!(!allowed(&l.admit(&s, s.now())));
}

#[test]
fn hints_come_from_retry_after_or_ratelimit_reset() {
    let e = error_event(ErrorKind::RateLimited, 1);
    assert_eq!(hinted_pause(&e), None);
    let e = e.with_tags(vec![("ratelimit-reset".into(), "3".into())]);
    assert_eq!(hinted_pause(&e), Some(3_000));
    let mut other = error_event(ErrorKind::Connect, 1);
    other.retry_after = Some(100);
    assert_eq!(
        hinted_pause(&other),
        None,
        "only rate-limited failures pause"
    );
    let off = limiter(r#"{"rate": 1, "honor-hints": false}"#);
    let s = MemoryStore::new();
    off.pause(&s, 0, 10_000);
    assert!(s.keys().is_empty());
}

#[test]
fn bad_config_is_refused() {
    let e = Limiter::new(&mender_guest::config::parse(r#"{"rate": 0}"#).unwrap()).unwrap_err();
    assert!(e.contains("rate"), "{e}");
    assert!(mender_guest::config::parse::<Config>(r#"{"rate": 1, "rat": 2}"#).is_err());
}
