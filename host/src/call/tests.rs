//! The call loop against plain-Rust deciders: retry, guardrail, deadline,
//! fallback and refresh ordering, without a Wasm component. (The same
//! paths with real plugins are in tests/pipeline.rs and tests/guardrails.rs.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CallContext, run};
use crate::api::{
    BoxFuture, CallError, CallSpec, CredentialProvider, GiveUp, PluginFault, Reply, ServedBy, Step,
};
use crate::config::{Guardrails, OnFault, RetryBudget, RetryRefusal};
use crate::failure::{ErrorKind, Failure};
use crate::host::HostShared;
use crate::host::results::ResultStore;
use crate::host::state::MemoryState;
use crate::pipeline::retry_budget::RetryBudgets;
use crate::pipeline::{Fallback, Pipeline, Strategy};
use crate::plugin::HookStart;
use crate::plugin::bindings::{Routed, Upstreams, wit};
use crate::redact::Redactor;

/// A strategy that answers from a script, and remembers what it saw.
struct Scripted {
    name: Arc<str>,
    hooks: wit::Hooks,
    on_fault: OnFault,
    admissions: Mutex<VecDeque<Result<Routed<wit::Admission>, PluginFault>>>,
    decisions: Mutex<VecDeque<Result<Routed<wit::Decision>, PluginFault>>>,
    seen: Mutex<Vec<wit::ErrorEvent>>,
    /// Routing: the upstreams each hook call was told of.
    upstreams_seen: Mutex<Vec<Upstreams>>,
}

impl Scripted {
    fn deciding(name: &str, decisions: Vec<wit::Decision>) -> Arc<Scripted> {
        Scripted::routing(name, decisions.into_iter().map(Routed::from).collect())
    }

    /// Answers `decisions`, `retry-on`s among them.
    fn routing(name: &str, decisions: Vec<Routed<wit::Decision>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            hooks: wit::Hooks::ON_ERROR,
            on_fault: OnFault::FailOpen,
            admissions: Mutex::default(),
            decisions: Mutex::new(decisions.into_iter().map(Ok).collect()),
            seen: Mutex::default(),
            upstreams_seen: Mutex::default(),
        })
    }

    fn faulting(name: &str, on_fault: OnFault) -> Arc<Scripted> {
        let fault = PluginFault {
            plugin: name.into(),
            reason: "trapped in on-error".into(),
            cut_off: false,
        };
        Arc::new(Scripted {
            name: name.into(),
            hooks: wit::Hooks::ON_ERROR,
            on_fault,
            admissions: Mutex::default(),
            decisions: Mutex::new(VecDeque::from([Err(fault)])),
            seen: Mutex::default(),
            upstreams_seen: Mutex::default(),
        })
    }

    fn admitting(name: &str, admissions: Vec<wit::Admission>) -> Arc<Scripted> {
        Scripted::granting(name, admissions.into_iter().map(Routed::from).collect())
    }

    /// Admits with `admissions`, grants that route among them.
    fn granting(name: &str, admissions: Vec<Routed<wit::Admission>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            hooks: wit::Hooks::ADMIT,
            on_fault: OnFault::FailOpen,
            admissions: Mutex::new(admissions.into_iter().map(Ok).collect()),
            decisions: Mutex::default(),
            seen: Mutex::default(),
            upstreams_seen: Mutex::default(),
        })
    }
}

impl Strategy for Scripted {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn on_fault(&self) -> OnFault {
        self.on_fault
    }
    fn hooks(&self) -> wit::Hooks {
        self.hooks
    }
    fn admit<'a>(
        self: Arc<Self>,
        _: HookStart,
        _: &'a Arc<str>,
        _: &'a wit::CallInfo,
        _: &'a wit::Outcomes,
        detail: &'a crate::plugin::current::RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<crate::plugin::current::AdmitAnswer>, PluginFault>> {
        self.upstreams_seen
            .lock()
            .unwrap()
            .push(detail.upstreams.clone());
        let next = self.admissions.lock().unwrap().pop_front();
        let next = next.unwrap_or(Ok(wit::Admission::Allow(wit::Grant::default()).into()));
        Box::pin(std::future::ready(next.map(|r| Routed {
            answer: r.answer.into(),
            upstream: r.upstream,
        })))
    }
    fn on_error<'a>(
        self: Arc<Self>,
        _: HookStart,
        _: &'a Arc<str>,
        event: &'a wit::ErrorEvent,
        _: &'a wit::Outcomes,
        detail: &'a crate::plugin::current::RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<wit::Decision>, PluginFault>> {
        self.seen.lock().unwrap().push(event.clone());
        self.upstreams_seen
            .lock()
            .unwrap()
            .push(detail.upstreams.clone());
        let next = self.decisions.lock().unwrap().pop_front();
        Box::pin(std::future::ready(
            next.unwrap_or(Ok(wit::Decision::Pass.into())),
        ))
    }
}

/// A fallback handler with a fixed answer.
struct Canned {
    name: Arc<str>,
    body: Option<String>,
}

impl Fallback for Canned {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn on_fault(&self) -> OnFault {
        OnFault::FailOpen
    }
    fn records_results(&self) -> bool {
        false
    }
    fn serve<'a>(
        self: Arc<Self>,
        _: HookStart,
        _: &'a Arc<str>,
        _: &'a wit::ErrorEvent,
        _: Option<&'a wit::RecordedResult>,
    ) -> BoxFuture<'a, Result<Option<wit::FallbackAnswer>, PluginFault>> {
        let answer = self
            .body
            .clone()
            .map(|body| wit::FallbackAnswer { body, age: None });
        Box::pin(std::future::ready(Ok(answer)))
    }
}

/// The runtime's parts, for one test.
struct Host {
    shared: HostShared,
    redactor: Redactor,
    results: ResultStore,
    credentials: HashMap<String, Arc<dyn CredentialProvider>>,
    budgets: RetryBudgets,
    activity: super::activity::Activity,
}

impl Host {
    fn new() -> Host {
        let mut redactor = Redactor::default();
        redactor.add_secret("hunter2-secret");
        Host {
            shared: HostShared::live(Arc::new(MemoryState::default()), Some(7), false),
            redactor,
            results: ResultStore::default(),
            credentials: HashMap::new(),
            budgets: RetryBudgets::default(),
            activity: Default::default(),
        }
    }

    fn context(&self, pipeline: &Arc<Pipeline>) -> CallContext<'_> {
        CallContext {
            pipeline: pipeline.clone(),
            host: &self.shared,
            redactor: &self.redactor,
            results: &self.results,
            credentials: &self.credentials,
            budgets: &self.budgets,
            activity: &self.activity,
        }
    }

    /// A call whose attempts fail with `failures` in turn, then succeed.
    async fn call(
        &self,
        pipeline: &Arc<Pipeline>,
        spec: CallSpec,
        failures: Vec<Failure>,
    ) -> (Result<Reply<String>, CallError<Failure>>, u32) {
        let failures = Mutex::new(VecDeque::from(failures));
        let attempts = Mutex::new(0);
        let result = run(
            |_| self.context(pipeline),
            spec.clone(),
            |_| {
                *attempts.lock().unwrap() += 1;
                let next = failures.lock().unwrap().pop_front();
                async move {
                    match next {
                        Some(f) => Err(f),
                        None => Ok("fresh".to_owned()),
                    }
                }
            },
        )
        .await;
        let n = *attempts.lock().unwrap();
        (result, n)
    }
}

fn pipeline(
    guardrails: Guardrails,
    strategies: Vec<Arc<dyn Strategy>>,
    fallbacks: Vec<Arc<dyn Fallback>>,
) -> Arc<Pipeline> {
    Arc::new(Pipeline::of("svc", guardrails, strategies, fallbacks))
}

fn connect() -> Failure {
    Failure::new(ErrorKind::Connect, "connection refused")
}

fn read() -> CallSpec {
    CallSpec::new("svc", "read").idempotent(true)
}

#[tokio::test(start_paused = true)]
async fn retries_what_a_strategy_asks_then_succeeds() {
    let host = Host::new();
    let backoff = Scripted::deciding(
        "backoff",
        vec![wit::Decision::Retry(100), wit::Decision::Retry(200)],
    );
    let p = pipeline(Guardrails::default(), vec![backoff.clone()], vec![]);
    let (result, attempts) = host.call(&p, read(), vec![connect(), connect()]).await;
    let reply = result.unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(reply.served_by, ServedBy::Upstream);
    let delays: Vec<_> = reply
        .history
        .iter()
        .map(|r| match &r.step {
            Step::Retry { delay, by } => (by.as_str(), *delay),
            other => panic!("unexpected step {other:?}"),
        })
        .collect();
    assert_eq!(
        delays,
        [
            ("backoff", Duration::from_millis(100)),
            ("backoff", Duration::from_millis(200))
        ]
    );
    // The second event knows it is the second attempt, and the first retry's
    // wait has passed on the (virtual) clock.
    let seen = backoff.seen.lock().unwrap();
    assert_eq!(seen[1].attempt, 2);
    assert!(seen[1].elapsed >= 100, "{}", seen[1].elapsed);
}

#[tokio::test(start_paused = true)]
async fn the_first_strategy_that_answers_decides() {
    let host = Host::new();
    let quiet = Scripted::deciding("quiet", vec![]);
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let never = Scripted::deciding("never", vec![wit::Decision::Fail("not me".into())]);
    let p = pipeline(
        Guardrails::default(),
        vec![quiet.clone(), backoff, never.clone()],
        vec![],
    );
    let (result, _) = host.call(&p, read(), vec![connect()]).await;
    result.unwrap();
    assert_eq!(
        quiet.seen.lock().unwrap().len(),
        1,
        "a passing strategy is still asked"
    );
    assert!(
        never.seen.lock().unwrap().is_empty(),
        "nobody after the one that answered"
    );
}

#[tokio::test(start_paused = true)]
async fn max_attempts_ends_the_call_with_a_typed_refusal() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1); 10]);
    let g = Guardrails {
        max_attempts: 2,
        ..Guardrails::default()
    };
    let p = pipeline(g, vec![backoff], vec![]);
    let (result, attempts) = host.call(&p, read(), vec![connect(); 5]).await;
    let err = result.unwrap_err();
    assert_eq!(attempts, 2);
    assert_eq!(
        err.cause,
        GiveUp::RetryRefused {
            plugin: "backoff".into(),
            refusal: RetryRefusal::AttemptsExhausted(2)
        }
    );
    assert_eq!(
        err.reason,
        "backoff asked to retry; guardrail: max-attempts (2) reached"
    );
    assert!(
        matches!(err.history.last().unwrap().step, Step::Fail { ref cause, .. } if *cause == err.cause)
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_is_not_retried_unless_configured() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let p = pipeline(Guardrails::default(), vec![backoff], vec![]);
    let write = CallSpec::new("svc", "create");
    let (result, attempts) = host.call(&p, write, vec![connect()]).await;
    assert_eq!(attempts, 1);
    assert!(matches!(
        result.unwrap_err().cause,
        GiveUp::RetryRefused {
            refusal: RetryRefusal::NotIdempotent,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_refused_before_sleeping() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(5_000)]);
    let p = pipeline(Guardrails::default(), vec![backoff], vec![]);
    let spec = read().deadline(Duration::from_secs(1));
    let start = tokio::time::Instant::now();
    let (result, _) = host.call(&p, spec, vec![connect()]).await;
    assert!(matches!(
        result.unwrap_err().cause,
        GiveUp::RetryRefused {
            refusal: RetryRefusal::PastDeadline,
            ..
        }
    ));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "it gave up at once, without waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_deadline_is_no_deadline_not_a_panic() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(10)]);
    let p = pipeline(Guardrails::default(), vec![backoff.clone()], vec![]);
    let spec = read().deadline(Duration::MAX);
    let (result, attempts) = host.call(&p, spec, vec![connect()]).await;
    result.unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(backoff.seen.lock().unwrap()[0].deadline_left, None);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_classifies_a_hang_as_timeout() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![]);
    let g = Guardrails {
        attempt_timeout: Some(Duration::from_millis(50)),
        ..Guardrails::default()
    };
    let p = pipeline(g, vec![backoff.clone()], vec![]);
    let err = run(
        |_| host.context(&p),
        read(),
        |_| async { std::future::pending::<Result<String, Failure>>().await },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(
        err.cause,
        GiveUp::NoRetry {
            kind: ErrorKind::Timeout
        }
    );
    assert_eq!(
        backoff.seen.lock().unwrap()[0].kind,
        wit::ErrorKind::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_handlers_answer_after_the_strategies_give_up() {
    let host = Host::new();
    let none: Arc<dyn Fallback> = Arc::new(Canned {
        name: "empty".into(),
        body: None,
    });
    let canned: Arc<dyn Fallback> = Arc::new(Canned {
        name: "static".into(),
        body: Some("stale".into()),
    });
    let p = pipeline(Guardrails::default(), vec![], vec![none, canned]);
    let (result, _) = host.call(&p, read(), vec![connect()]).await;
    let reply = result.unwrap();
    assert_eq!(reply.value, "stale");
    assert_eq!(
        reply.served_by,
        ServedBy::Fallback {
            plugin: "static".into(),
            age: None
        }
    );
    // The history says why the strategies gave up before the fallback.
    assert!(matches!(
        &reply.history[0].step,
        Step::Fail {
            cause: GiveUp::NoStrategy {
                kind: ErrorKind::Connect
            },
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_fail_closed_fault_fails_the_call_and_fail_open_skips() {
    let host = Host::new();
    let open = Scripted::faulting("open", OnFault::FailOpen);
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let p = pipeline(Guardrails::default(), vec![open, backoff], vec![]);
    let (result, attempts) = host.call(&p, read(), vec![connect()]).await;
    result.unwrap();
    assert_eq!(attempts, 2, "the faulting fail-open strategy was skipped");

    let closed = Scripted::faulting("closed", OnFault::FailClosed);
    let p = pipeline(Guardrails::default(), vec![closed], vec![]);
    let (result, _) = host.call(&p, read(), vec![connect()]).await;
    let err = result.unwrap_err();
    assert!(matches!(err.cause, GiveUp::PluginFault(ref f) if f.plugin == "closed"));
    assert_eq!(err.reason, "plugin `closed` trapped in on-error");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_reaches_the_strategies_as_rejected_and_is_not_counted() {
    let host = Host::new();
    let breaker = Scripted::admitting(
        "breaker",
        vec![wit::Admission::Reject(wit::Rejection {
            reason: "circuit open".into(),
            retry_after: Some(500),
        })],
    );
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(600)]);
    let p = pipeline(
        Guardrails::default(),
        vec![breaker, backoff.clone()],
        vec![],
    );
    let (result, attempts) = host.call(&p, read(), vec![]).await;
    result.unwrap();
    assert_eq!(attempts, 1, "the rejected attempt never ran");
    let seen = backoff.seen.lock().unwrap();
    assert_eq!(seen[0].kind, wit::ErrorKind::Rejected);
    assert_eq!(seen[0].retry_after, Some(500));
    assert!(
        seen[0]
            .tags
            .contains(&("rejected-by".into(), "breaker".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_calls_the_provider_once_then_the_guardrail_stops_it() {
    let mut host = Host::new();
    let refreshed = Arc::new(Mutex::new(0));
    let counter = refreshed.clone();
    host.credentials.insert(
        "svc".into(),
        Arc::new(move |_service: String| {
            *counter.lock().unwrap() += 1;
            async { Ok::<(), String>(()) }
        }),
    );
    let auth = Scripted::deciding("auth", vec![wit::Decision::RefreshCredentials; 3]);
    let p = pipeline(Guardrails::default(), vec![auth], vec![]);
    let expired = || Failure::new(ErrorKind::Auth, "401 token expired");
    // A write: a refresh is still allowed (the upstream refused before acting).
    let write = CallSpec::new("svc", "create");
    let (result, attempts) = host.call(&p, write, vec![expired(), expired()]).await;
    let err = result.unwrap_err();
    assert_eq!((attempts, *refreshed.lock().unwrap()), (2, 1));
    assert_eq!(
        err.cause,
        GiveUp::RefreshLimit {
            plugin: "auth".into(),
            max: 1
        }
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_without_a_provider_says_so() {
    let host = Host::new();
    let auth = Scripted::deciding("auth", vec![wit::Decision::RefreshCredentials]);
    let p = pipeline(Guardrails::default(), vec![auth], vec![]);
    let (result, _) = host
        .call(&p, read(), vec![Failure::new(ErrorKind::Auth, "401")])
        .await;
    assert_eq!(
        result.unwrap_err().cause,
        GiveUp::NoCredentialProvider {
            plugin: "auth".into(),
            service: "svc".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_is_a_retry_refusal() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1); 10]);
    let g = Guardrails {
        retry_budget: Some(RetryBudget {
            percent: 0,
            min_retries: 1,
            window: Duration::from_secs(10),
        }),
        ..Guardrails::default()
    };
    let p = pipeline(g, vec![backoff], vec![]);
    let (first, _) = host.call(&p, read(), vec![connect()]).await;
    first.unwrap();
    let (second, attempts) = host.call(&p, read(), vec![connect()]).await;
    assert_eq!(attempts, 1);
    let err = second.unwrap_err();
    assert!(
        matches!(
            err.cause,
            GiveUp::RetryRefused {
                refusal: RetryRefusal::BudgetExhausted { retries: 1, .. },
                ..
            }
        ),
        "{:?}",
        err.cause
    );
    assert!(
        err.reason.contains("retry-budget exhausted"),
        "{}",
        err.reason
    );
}

#[tokio::test(start_paused = true)]
async fn plugins_and_history_see_messages_redacted() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![]);
    let p = pipeline(Guardrails::default(), vec![backoff.clone()], vec![]);
    let leaky = Failure::new(ErrorKind::Auth, "token hunter2-secret rejected");
    let (result, _) = host.call(&p, read(), vec![leaky]).await;
    let err = result.unwrap_err();
    assert!(!backoff.seen.lock().unwrap()[0].message.contains("hunter2"));
    assert!(!err.history[0].message.contains("hunter2"));
}

// Routing (contract 0.2): `retry-on` and a grant's `upstream`.

fn retry_on(upstream: u32, delay: u64) -> Routed<wit::Decision> {
    Routed {
        answer: wit::Decision::Retry(delay),
        upstream: Some(upstream),
    }
}

fn primary_backup() -> CallSpec {
    read().upstreams(["primary", "backup"])
}

/// A call whose attempts fail with `failures` in turn, then succeed; and
/// the upstream each attempt was told to use.
async fn call_routed(
    host: &Host,
    pipeline: &Arc<Pipeline>,
    spec: CallSpec,
    failures: Vec<Failure>,
) -> (Result<Reply<String>, CallError<Failure>>, Vec<Option<u32>>) {
    let failures = Mutex::new(VecDeque::from(failures));
    let used = Mutex::new(Vec::new());
    let result = run(
        |_| host.context(pipeline),
        spec.clone(),
        |attempt| {
            used.lock().unwrap().push(attempt.upstream);
            let next = failures.lock().unwrap().pop_front();
            async move { next.map_or_else(|| Ok("fresh".to_owned()), Err) }
        },
    )
    .await;
    (result, used.into_inner().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_retry_on_sends_the_next_attempt_to_that_upstream() {
    let host = Host::new();
    let router = Scripted::routing("router", vec![retry_on(1, 5)]);
    let p = pipeline(Guardrails::default(), vec![router.clone()], vec![]);
    let (result, used) = call_routed(&host, &p, primary_backup(), vec![connect()]).await;
    let reply = result.unwrap();
    assert_eq!(used, [Some(0), Some(1)], "primary first, then the route");
    assert_eq!(reply.history.len(), 1);
    assert_eq!(reply.history[0].upstream.as_deref(), Some("primary"));
    assert!(
        matches!(reply.history[0].step, Step::Retry { delay, .. } if delay == Duration::from_millis(5))
    );
    // The strategy was told the list and which upstream failed.
    let seen = router.upstreams_seen.lock().unwrap();
    assert_eq!(
        seen[0].names.as_deref(),
        Some(&["primary".to_owned(), "backup".to_owned()][..])
    );
    assert_eq!(seen[0].used, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_plain_retry_after_a_route_stays_on_the_routed_upstream() {
    let host = Host::new();
    let router = Scripted::routing(
        "router",
        vec![retry_on(1, 0), wit::Decision::Retry(1).into()],
    );
    let p = pipeline(Guardrails::default(), vec![router.clone()], vec![]);
    let (result, used) = call_routed(&host, &p, primary_backup(), vec![connect(), connect()]).await;
    let reply = result.unwrap();
    assert_eq!(used, [Some(0), Some(1), Some(1)]);
    let upstreams: Vec<_> = reply
        .history
        .iter()
        .map(|r| r.upstream.as_deref())
        .collect();
    assert_eq!(upstreams, [Some("primary"), Some("backup")]);
    assert_eq!(router.upstreams_seen.lock().unwrap()[1].used, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_route_past_the_list_is_a_fault_and_the_call_still_ends_well() {
    let host = Host::new();
    // Fail-open: the bad route is skipped like any fault, the next
    // strategy decides, and the call is answered.
    let router = Scripted::routing("router", vec![retry_on(5, 0)]);
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let p = pipeline(Guardrails::default(), vec![router, backoff.clone()], vec![]);
    let (result, used) = call_routed(&host, &p, primary_backup(), vec![connect()]).await;
    assert_eq!(result.unwrap().value, "fresh");
    assert_eq!(used, [Some(0), Some(0)], "the bad route went nowhere");
    assert_eq!(
        backoff.seen.lock().unwrap().len(),
        1,
        "the next strategy decided"
    );

    // Fail-closed: the call fails with the fault, which names the plugin,
    // the index and the list.
    let router = Arc::new(Scripted {
        on_fault: OnFault::FailClosed,
        ..Arc::into_inner(Scripted::routing("router", vec![retry_on(5, 0)])).unwrap()
    });
    let p = pipeline(Guardrails::default(), vec![router], vec![]);
    let (result, used) = call_routed(&host, &p, primary_backup(), vec![connect()]).await;
    let err = result.unwrap_err();
    assert_eq!(used, [Some(0)]);
    let GiveUp::PluginFault(fault) = &err.cause else {
        panic!("{:?}", err.cause)
    };
    assert_eq!(fault.plugin, "router");
    for part in ["upstream 5", "\"primary\"", "\"backup\""] {
        assert!(fault.reason.contains(part), "{part}: {}", fault.reason);
    }
}

#[tokio::test(start_paused = true)]
async fn a_grant_routes_the_attempt_it_admits() {
    let host = Host::new();
    let allow = |upstream| Routed {
        answer: wit::Admission::Allow(wit::Grant::default()),
        upstream,
    };
    // Attempt 1 to the backup (the grant); attempt 2 routed nowhere by
    // its grant, so it stays where attempt 1 went.
    let ejector = Scripted::granting("ejector", vec![allow(Some(1)), allow(None)]);
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(1)]);
    let p = pipeline(
        Guardrails::default(),
        vec![ejector.clone(), backoff],
        vec![],
    );
    let (result, used) = call_routed(&host, &p, primary_backup(), vec![connect()]).await;
    result.unwrap();
    assert_eq!(used, [Some(1), Some(1)]);
    let seen = ejector.upstreams_seen.lock().unwrap();
    assert_eq!(
        seen[0].used,
        Some(0),
        "admit is told where the attempt would go"
    );
}

#[tokio::test(start_paused = true)]
async fn without_upstreams_a_route_is_a_plain_retry() {
    let host = Host::new();
    let router = Scripted::routing("router", vec![retry_on(3, 0)]);
    let p = pipeline(Guardrails::default(), vec![router.clone()], vec![]);
    let (result, used) = call_routed(&host, &p, read(), vec![connect()]).await;
    let reply = result.unwrap();
    assert_eq!(used, [None, None]);
    assert_eq!(reply.history[0].upstream, None);
    assert_eq!(
        router.upstreams_seen.lock().unwrap()[0],
        Upstreams::default()
    );
}

#[tokio::test(start_paused = true)]
async fn plugins_and_history_see_upstream_names_redacted() {
    let host = Host::new();
    let router = Scripted::routing("router", vec![retry_on(1, 0)]);
    let p = pipeline(Guardrails::default(), vec![router.clone()], vec![]);
    let spec = read().upstreams(["https://a/?key=hunter2-secret", "https://b/"]);
    let (result, _) = call_routed(&host, &p, spec, vec![connect()]).await;
    let reply = result.unwrap();
    let recorded = reply.history[0].upstream.as_deref().unwrap();
    assert!(!recorded.contains("hunter2"), "{recorded}");
    let seen = router.upstreams_seen.lock().unwrap();
    let names = seen[0].names.as_deref().unwrap();
    assert!(!names[0].contains("hunter2"), "{names:?}");
    assert_eq!(names[1], "https://b/");
}

// Hedging (`hedge.rs`): a grant's hedge races a second attempt against a
// slow first one.

/// An admitting strategy that grants a hedge (no lease: asked per call).
fn hedging(after: u64, max: u32) -> Arc<Scripted> {
    let grant = wit::Grant {
        hedge: Some(wit::Hedge { after, max }),
        ..wit::Grant::default()
    };
    Scripted::admitting("hedge", vec![wit::Admission::Allow(grant); 4])
}

/// Counts attempt futures dropped before they finished.
struct DropGuard {
    finished: bool,
    cancelled: Arc<std::sync::atomic::AtomicU32>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.cancelled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// What each attempt of a scripted race does: take `ms`, then answer
/// (`Ok`) or fail with `connect`.
#[derive(Clone, Copy)]
struct Script(u64, bool);

impl Host {
    /// A call whose attempt `n` does `script[n - 1]`; how many attempts
    /// started, and how many were dropped unfinished.
    async fn race(
        &self,
        pipeline: &Arc<Pipeline>,
        spec: CallSpec,
        script: &[Script],
    ) -> (Result<Reply<String>, CallError<Failure>>, u32, u32) {
        let started = std::sync::atomic::AtomicU32::new(0);
        let cancelled = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let result = run(
            |_| self.context(pipeline),
            spec.clone(),
            |a| {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Script(ms, ok) = script[a.number as usize - 1];
                let guard = DropGuard {
                    finished: false,
                    cancelled: cancelled.clone(),
                };
                async move {
                    // The whole guard, not just the field set below.
                    let mut guard = guard;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    guard.finished = true;
                    if ok {
                        Ok(format!("answer {}", a.number))
                    } else {
                        Err(connect())
                    }
                }
            },
        )
        .await;
        let load = |n: &std::sync::atomic::AtomicU32| n.load(std::sync::atomic::Ordering::SeqCst);
        (result, load(&started), load(&cancelled))
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_answers_first_and_the_slow_attempt_is_cancelled() {
    let host = Host::new();
    let p = pipeline(Guardrails::default(), vec![hedging(50, 1)], vec![]);
    let start = tokio::time::Instant::now();
    let script = [Script(400, true), Script(10, true)];
    let (result, started, cancelled) = host.race(&p, read(), &script).await;
    let reply = result.unwrap();
    assert_eq!(reply.value, "answer 2", "the hedge answered first");
    assert_eq!(start.elapsed(), Duration::from_millis(60));
    assert_eq!(
        (started, cancelled),
        (2, 1),
        "the first attempt was dropped"
    );
    let [first] = &reply.history[..] else {
        panic!("{:?}", reply.history)
    };
    assert_eq!(first.attempt, 1);
    assert_eq!(first.kind, ErrorKind::Cancelled);
    assert_eq!(first.step, Step::Cancelled { answered: 2 });
    assert_eq!(first.took, Duration::from_millis(60));
}

#[tokio::test(start_paused = true)]
async fn a_fast_first_attempt_starts_no_hedge() {
    let host = Host::new();
    let p = pipeline(Guardrails::default(), vec![hedging(50, 2)], vec![]);
    let script = [Script(20, true), Script(1, true)];
    let (result, started, cancelled) = host.race(&p, read(), &script).await;
    let reply = result.unwrap();
    assert_eq!(
        (reply.value.as_str(), started, cancelled),
        ("answer 1", 1, 0)
    );
    assert!(reply.history.is_empty());
}

#[tokio::test(start_paused = true)]
async fn hedged_failures_reach_on_error_once_when_none_is_left_running() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![]);
    let p = pipeline(
        Guardrails::default(),
        vec![hedging(50, 1), backoff.clone()],
        vec![],
    );
    // Attempt 2 (a hedge at 50 ms) fails at 60 ms while attempt 1 still
    // runs; attempt 1 fails at 100 ms and ends the race.
    let script = [Script(100, false), Script(10, false)];
    let (result, started, cancelled) = host.race(&p, read(), &script).await;
    let err = result.unwrap_err();
    assert_eq!((started, cancelled), (2, 0));
    let seen = backoff.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one on-error for the race");
    assert_eq!(seen[0].attempt, 1, "the failure that ended the race");
    let steps: Vec<_> = err.history.iter().map(|r| (r.attempt, &r.step)).collect();
    assert!(
        matches!(steps[..], [(2, Step::Hedged), (1, Step::Fail { .. })]),
        "{steps:?}"
    );
    assert_eq!(
        err.cause,
        GiveUp::NoRetry {
            kind: ErrorKind::Connect
        }
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_lost_race_a_retry_takes_the_next_number() {
    let host = Host::new();
    let backoff = Scripted::deciding("backoff", vec![wit::Decision::Retry(10)]);
    let p = pipeline(
        Guardrails::default(),
        vec![hedging(50, 1), backoff.clone()],
        vec![],
    );
    let script = [Script(100, false), Script(10, false), Script(1, true)];
    let (result, started, _) = host.race(&p, read(), &script).await;
    assert_eq!(result.unwrap().value, "answer 3");
    assert_eq!(started, 3);
}

#[tokio::test(start_paused = true)]
async fn a_write_is_never_hedged() {
    let host = Host::new();
    let p = pipeline(Guardrails::default(), vec![hedging(50, 2)], vec![]);
    let script = [Script(400, true), Script(10, true), Script(10, true)];
    let write = CallSpec::new("svc", "create");
    let (result, started, cancelled) = host.race(&p, write, &script).await;
    assert_eq!(result.unwrap().value, "answer 1");
    assert_eq!((started, cancelled), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn max_hedges_caps_what_a_plugin_grants() {
    let host = Host::new();
    let slow = [Script(400, true); 6];
    let one = Guardrails {
        max_hedges: 1,
        ..Guardrails::default()
    };
    let p = pipeline(one, vec![hedging(50, 5)], vec![]);
    let (result, started, cancelled) = host.race(&p, read(), &slow).await;
    assert_eq!(result.unwrap().value, "answer 1");
    assert_eq!((started, cancelled), (2, 1), "one hedge, not five");
    let off = Guardrails {
        max_hedges: 0,
        ..Guardrails::default()
    };
    let p = pipeline(off, vec![hedging(50, 5)], vec![]);
    let (_, started, _) = host.race(&p, read(), &slow).await;
    assert_eq!(started, 1, "max-hedges = 0: never");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_takes_a_free_bulkhead_slot_or_does_not_start() {
    let host = Host::new();
    let limited = |max| Guardrails {
        in_flight: Some(crate::config::InFlightLimit::new(max)),
        ..Guardrails::default()
    };
    let script = [Script(400, true), Script(10, true)];
    let p = pipeline(limited(1), vec![hedging(50, 1)], vec![]);
    let (result, started, _) = host.race(&p, read(), &script).await;
    assert_eq!(result.unwrap().value, "answer 1");
    assert_eq!(started, 1, "no slot free: no hedge, and no queueing");
    let p = pipeline(limited(2), vec![hedging(50, 1)], vec![]);
    let (result, started, cancelled) = host.race(&p, read(), &script).await;
    assert_eq!(result.unwrap().value, "answer 2");
    assert_eq!((started, cancelled), (2, 1));
    assert_eq!(
        p.bulkhead.in_flight(),
        0,
        "the cancelled attempt's slot came back"
    );
}

/// Contract 0.2's in-flight count, slow calls and permits through the loop.
#[path = "detail_tests.rs"]
mod detail;
