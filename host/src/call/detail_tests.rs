//! What the loop hands a 0.2 strategy beside its outcomes: the attempts in
//! flight (counted from before admission), the slow calls against its
//! threshold, and its permits, from the grant to the attempt's outcome.

use std::sync::Mutex;

use super::*;
use crate::plugin::current::{AdmitAnswer, RecentDetail};

/// A 0.2 strategy that grants permits 1, 2, ... and remembers the detail
/// each hook was given.
struct Permitting {
    name: Arc<str>,
    /// What its grants hedge.
    hedge: Option<wit::Hedge>,
    granted: Mutex<u64>,
    admitted: Mutex<Vec<RecentDetail>>,
    failed: Mutex<Vec<RecentDetail>>,
}

impl Permitting {
    fn new() -> Arc<Permitting> {
        Arc::new(Permitting {
            name: "permitting".into(),
            hedge: None,
            granted: Mutex::new(0),
            admitted: Mutex::default(),
            failed: Mutex::default(),
        })
    }
}

impl Strategy for Permitting {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn on_fault(&self) -> OnFault {
        OnFault::FailOpen
    }
    fn hooks(&self) -> wit::Hooks {
        wit::Hooks::ADMIT | wit::Hooks::ON_ERROR
    }
    fn reads_detail(&self) -> bool {
        true
    }
    fn slow_call_threshold(&self) -> Option<u64> {
        Some(40)
    }
    fn admit<'a>(
        self: Arc<Self>,
        _: HookStart,
        _: &'a Arc<str>,
        _: &'a wit::CallInfo,
        _: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<AdmitAnswer>, PluginFault>> {
        self.admitted.lock().unwrap().push(detail.clone());
        let mut granted = self.granted.lock().unwrap();
        *granted += 1;
        let answer = AdmitAnswer {
            admission: wit::Admission::Allow(wit::Grant {
                hedge: self.hedge,
                ..wit::Grant::default()
            }),
            permit: Some(*granted),
        };
        Box::pin(std::future::ready(Ok(answer.into())))
    }
    fn on_error<'a>(
        self: Arc<Self>,
        _: HookStart,
        _: &'a Arc<str>,
        _: &'a wit::ErrorEvent,
        _: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<wit::Decision>, PluginFault>> {
        self.failed.lock().unwrap().push(detail.clone());
        Box::pin(std::future::ready(Ok(wit::Decision::Retry(0).into())))
    }
}

#[tokio::test(start_paused = true)]
async fn a_permit_comes_back_with_its_attempts_outcome() {
    let host = Host::new();
    let plugin = Permitting::new();
    let p = pipeline(Guardrails::default(), vec![plugin.clone()], vec![]);
    // Attempt 1 (permit 1) fails, attempt 2 (permit 2) succeeds.
    let (result, attempts) = host.call(&p, read(), vec![connect()]).await;
    assert!(result.is_ok());
    assert_eq!(attempts, 2);
    assert_eq!(plugin.failed.lock().unwrap()[0].permit, Some(1));
    // The next call's admission hears that permit 2's attempt succeeded.
    host.call(&p, read(), vec![]).await.0.unwrap();
    let admitted = plugin.admitted.lock().unwrap();
    assert!(admitted[0].permitted_successes.is_empty());
    assert!(
        admitted[1].permitted_successes.is_empty(),
        "permit 1 failed"
    );
    assert_eq!(admitted[2].permitted_successes, vec![2]);
    assert_eq!(admitted[2].permit, None, "a permit is for on-error");
}

#[tokio::test(start_paused = true)]
async fn in_flight_counts_the_others_from_admission_to_outcome() {
    let host = Host::new();
    let plugin = Permitting::new();
    let p = pipeline(Guardrails::default(), vec![plugin.clone()], vec![]);
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = Mutex::new(Some(held));
    let spec = read();
    let slow = run(
        |_| host.context(&p),
        spec.clone(),
        |_| {
            let held = held.lock().unwrap().take();
            async move {
                if let Some(held) = held {
                    let _ = held.await;
                }
                Ok::<_, Failure>("slow".to_owned())
            }
        },
    );
    let other = async {
        // Let the slow call be admitted and start its attempt.
        tokio::task::yield_now().await;
        let seen = host.call(&p, read(), vec![]).await;
        release.send(()).unwrap();
        seen
    };
    let (slow, other) = tokio::join!(slow, other);
    assert!(slow.is_ok() && other.0.is_ok());
    let seen: Vec<u32> = plugin
        .admitted
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.in_flight)
        .collect();
    assert_eq!(seen[0], 0, "the first call alone");
    assert_eq!(seen[1], 1, "the slow call is in flight");
    host.call(&p, read(), vec![]).await.0.unwrap();
    assert_eq!(
        plugin.admitted.lock().unwrap()[2].in_flight,
        0,
        "both ended"
    );
    assert_eq!(p.stats.detail.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_of_a_hedge_race_is_in_flight() {
    let host = Host::new();
    let mut plugin = Permitting::new();
    Arc::get_mut(&mut plugin).unwrap().hedge = Some(wit::Hedge { after: 10, max: 1 });
    let p = pipeline(Guardrails::default(), vec![plugin.clone()], vec![]);
    let (release, held) = tokio::sync::watch::channel(false);
    let spec = read();
    // Every attempt of the hedged call waits for the release.
    let hedged = run(
        |_| host.context(&p),
        spec.clone(),
        |_| {
            let mut held = held.clone();
            async move {
                let _ = held.wait_for(|go| *go).await;
                Ok::<_, Failure>("slow".to_owned())
            }
        },
    );
    let other = async {
        // Past the hedge's delay: the first attempt and its hedge run.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let seen = p.stats.detail.in_flight();
        release.send(true).unwrap();
        seen
    };
    let (hedged, seen) = tokio::join!(hedged, other);
    assert_eq!(hedged.unwrap().value, "slow");
    assert_eq!(seen, 2, "the first attempt and its hedge");
    assert_eq!(p.stats.detail.in_flight(), 0, "both ended");
}

#[tokio::test(start_paused = true)]
async fn successes_slower_than_the_threshold_are_slow_calls() {
    let host = Host::new();
    let plugin = Permitting::new();
    let p = pipeline(Guardrails::default(), vec![plugin.clone()], vec![]);
    for ms in [10, 50, 100] {
        run(
            |_| host.context(&p),
            read(),
            |_| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, Failure>(String::new())
            },
        )
        .await
        .unwrap();
    }
    host.call(&p, read(), vec![]).await.0.unwrap();
    let admitted = plugin.admitted.lock().unwrap();
    let slow: u32 = admitted.iter().map(|d| d.slow_calls).sum();
    assert_eq!(slow, 2, "50 and 100 ms are slower than 40 ms");
}

#[tokio::test(start_paused = true)]
async fn a_service_without_a_detail_reader_counts_nothing_in_flight() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let p = pipeline(Guardrails::default(), vec![backoff], vec![]);
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = Mutex::new(Some(held));
    let spec = read();
    let call = run(
        |_| host.context(&p),
        spec.clone(),
        |_| {
            let held = held.lock().unwrap().take();
            async move {
                if let Some(held) = held {
                    let _ = held.await;
                }
                Ok::<_, Failure>(String::new())
            }
        },
    );
    let check = async {
        tokio::task::yield_now().await;
        let counted = p.stats.detail.in_flight();
        release.send(()).unwrap();
        counted
    };
    let (result, counted) = tokio::join!(call, check);
    assert!(result.is_ok());
    assert_eq!(counted, 0);
}
