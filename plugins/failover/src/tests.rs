//! Ejection, probation and routing against an in-memory store.

use mender_guest::testing::MemoryStore;

use crate::config::Config;
use crate::ejection::{Health, Plan, health, next_after, plan, record_failure};

fn config(eject_after: u32) -> Config {
    let mut c: Config = serde_json::from_str("{}").unwrap();
    c.eject_after = eject_after;
    c
}

fn names() -> Vec<String> {
    vec!["primary".into(), "backup".into(), "spare".into()]
}

#[test]
fn ejects_after_eject_after_failures_within_the_window() {
    let (c, s) = (config(3), MemoryStore::new());
    assert_eq!(record_failure(&c, &s, "primary", 0), None);
    assert_eq!(record_failure(&c, &s, "primary", 1), None);
    let e = record_failure(&c, &s, "primary", 2).unwrap();
    assert_eq!((e.length, e.count), (30_000, 1));
    assert_eq!(health(&s, "primary", 3), Health::Ejected { until: 30_002 });
    assert_eq!(health(&s, "backup", 3), Health::Serving);
}

#[test]
fn failures_further_apart_than_the_window_do_not_add_up() {
    let (c, s) = (config(2), MemoryStore::new());
    assert_eq!(record_failure(&c, &s, "primary", 0), None);
    s.advance(10_000);
    assert_eq!(record_failure(&c, &s, "primary", 10_000), None);
}

#[test]
fn a_failure_on_probation_ejects_again_for_longer_up_to_the_cap() {
    let (c, s) = (config(1), MemoryStore::new());
    let mut now = 0;
    let mut lengths = Vec::new();
    for _ in 0..12 {
        let e = record_failure(&c, &s, "primary", now).unwrap();
        lengths.push(e.length / 1_000);
        now += e.length;
        s.advance(e.length);
        assert!(matches!(
            health(&s, "primary", now),
            Health::Probation { .. }
        ));
    }
    assert_eq!(lengths[..4], [30, 60, 90, 120]);
    assert_eq!(*lengths.last().unwrap(), 300, "max-eject-for caps it");
}

#[test]
fn a_probation_that_passes_resets_the_count() {
    let (c, s) = (config(1), MemoryStore::new());
    record_failure(&c, &s, "primary", 0).unwrap();
    // The ejection (30 s) and its probation (30 s more) pass.
    s.advance(60_000);
    assert_eq!(health(&s, "primary", 60_000), Health::Serving);
    let e = record_failure(&c, &s, "primary", 60_000).unwrap();
    assert_eq!(e.count, 1);
}

#[test]
fn the_next_upstream_skips_the_failed_and_the_ejected() {
    let (c, s) = (config(1), MemoryStore::new());
    assert_eq!(next_after(&s, &names(), 0, 0), Some(1));
    record_failure(&c, &s, "backup", 0).unwrap();
    assert_eq!(next_after(&s, &names(), 0, 1), Some(2));
    assert_eq!(next_after(&s, &names(), 2, 1), Some(0));
    record_failure(&c, &s, "spare", 1).unwrap();
    assert_eq!(next_after(&s, &names(), 0, 2), None);
}

#[test]
fn an_ejected_upstreams_attempts_go_to_the_first_serving_one_until_it_ends() {
    let (c, s) = (config(1), MemoryStore::new());
    let plan = |would, now| plan(&s, &names(), would, now);
    assert_eq!(
        plan(0, 0),
        Plan {
            to: 0,
            leasable: true,
            until: None
        },
        "nothing ejected"
    );
    // A retry routed to the backup is not leased: new calls go to the
    // primary.
    assert_eq!(
        plan(1, 0),
        Plan {
            to: 1,
            leasable: false,
            until: None
        }
    );
    record_failure(&c, &s, "primary", 0).unwrap();
    let ejected = Plan {
        to: 1,
        leasable: true,
        until: Some(30_000),
    };
    assert_eq!(plan(0, 5), ejected);
    assert_eq!(
        plan(1, 5),
        ejected,
        "new calls go to the backup too: leasable"
    );
    assert_eq!(
        plan(2, 5),
        Plan {
            to: 2,
            leasable: false,
            until: Some(30_000)
        }
    );
    assert_eq!(plan(0, 30_000).to, 0, "the probe goes to the primary");
}

#[test]
fn with_every_upstream_ejected_the_attempt_stays_and_nothing_is_leased() {
    let (c, s) = (config(1), MemoryStore::new());
    for name in names() {
        record_failure(&c, &s, &name, 0).unwrap();
    }
    let p = plan(&s, &names(), 1, 1);
    assert_eq!((p.to, p.leasable), (1, false));
}
