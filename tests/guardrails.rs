//! Limits no plugin can exceed, and what a faulty plugin does to a call:
//! each through the real host with real components.

mod common;

use std::time::Duration;

use common::{Script, fail, runtime};
use mender::{CallSpec, ErrorKind, Failure, Reply, Step};

const EAGER: &str = r#"
[guardrails]
max-attempts = 3
max-delay = "1s"
deadline = "off"
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "1h", max-delay = "2h", max-attempts = 100, jitter = "none", honor-retry-after = false }
[services.default]
strategies = ["backoff"]
"#;

async fn call(
    rt: &mender::Runtime,
    s: &Script,
    spec: CallSpec,
) -> Result<Reply<String>, mender::CallError<Failure>> {
    rt.call(spec, |_| s.next()).await
}

#[tokio::test(start_paused = true)]
async fn delays_are_clamped_and_attempts_capped() {
    let rt = runtime(EAGER);
    let script = Script::failing(fail(ErrorKind::Connect), 10);
    let err = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap_err();
    assert_eq!(
        script.calls(),
        3,
        "max-attempts = 3 whatever the plugin says"
    );
    let delays: Vec<_> = err
        .history
        .iter()
        .filter_map(|r| match r.step {
            Step::Retry { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        vec![Duration::from_secs(1); 2],
        "an hour-long delay is clamped to max-delay"
    );
    assert!(err.reason.contains("max-attempts (3)"), "{}", err.reason);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_operations_are_not_retried() {
    let rt = runtime(EAGER);
    let script = Script::failing(fail(ErrorKind::Connect), 10);
    let err = call(&rt, &script, CallSpec::new("api", "create"))
        .await
        .unwrap_err();
    assert_eq!(script.calls(), 1);
    assert!(err.reason.contains("not idempotent"), "{}", err.reason);

    let allowed = runtime(&EAGER.replace(
        "deadline = \"off\"",
        "deadline = \"off\"\nretry-non-idempotent = true",
    ));
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    assert!(
        call(&allowed, &script, CallSpec::new("api", "create"))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_ends_the_call() {
    let rt = runtime(&EAGER.replace("deadline = \"off\"", "deadline = \"2500ms\""));
    let script = Script::failing(fail(ErrorKind::Connect), 10);
    let started = tokio::time::Instant::now();
    let err = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap_err();
    assert!(err.reason.contains("deadline"), "{}", err.reason);
    assert!(started.elapsed() <= Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn hung_attempt_is_cancelled_and_classified_timeout() {
    let rt = runtime(
        r#"
[guardrails]
attempt-timeout = "300ms"
max-attempts = 2
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "10ms", jitter = "none" }
[services.default]
strategies = ["backoff"]
"#,
    );
    let mut attempts = Vec::new();
    let reply = rt
        .call(CallSpec::new("api", "get").idempotent(true), |a| {
            attempts.push(a);
            async move {
                if a.number == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Failure>("second try".to_owned())
            }
        })
        .await
        .unwrap();
    assert_eq!(reply.value, "second try");
    assert_eq!(reply.history[0].kind, ErrorKind::Timeout);
    assert_eq!(reply.history[0].took, Duration::from_millis(300));
    assert_eq!(attempts[0].timeout, Some(Duration::from_millis(300)));
}

fn trap_config(trap_in: &str, on_fault: &str) -> String {
    format!(
        r#"
[guardrails]
max-attempts = 3
[plugins.trap]
path = "{{guests}}/trap-strategy.wasm"
on-fault = "{on_fault}"
config = {{ trap-in = "{trap_in}" }}
[plugins.backoff]
bundled = "exponential-backoff"
config = {{ base = "10ms", jitter = "none" }}
[services.default]
strategies = ["trap", "backoff"]
"#
    )
}

#[tokio::test(start_paused = true)]
async fn trapping_plugin_fail_open_is_skipped() {
    let rt = runtime(&trap_config("on-error", "fail-open"));
    for _ in 0..3 {
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let reply = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
            .await
            .unwrap();
        assert_eq!(reply.value, "fresh", "backoff still retried after the trap");
    }
    let trap = rt.plugins().into_iter().find(|p| p.name == "trap").unwrap();
    assert_eq!(
        trap.faults, 3,
        "every trap is counted; a fresh instance is used each time"
    );
}

#[tokio::test(start_paused = true)]
async fn trapping_plugin_fail_closed_fails_the_call_naming_it() {
    let rt = runtime(&trap_config("on-error", "fail-closed"));
    let script = Script::failing(fail(ErrorKind::Connect), 1);
    let err = call(&rt, &script, CallSpec::new("api", "get").idempotent(true))
        .await
        .unwrap_err();
    assert!(err.reason.contains("plugin `trap`"), "{}", err.reason);
    assert!(err.reason.contains("on-error"), "{}", err.reason);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn trapping_admission_fail_closed_refuses_the_attempt() {
    let rt = runtime(
        &trap_config("admit", "fail-closed").replace("max-attempts = 3", "max-attempts = 1"),
    );
    let script = Script::default();
    let err = call(&rt, &script, CallSpec::new("api", "get"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(
        script.calls(),
        0,
        "fail-closed admission must not let the attempt start"
    );

    let open = runtime(&trap_config("admit", "fail-open"));
    assert!(
        call(&open, &script, CallSpec::new("api", "get"))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn plugins_see_redacted_messages_only() {
    let toml = r#"
[plugins.echo]
path = "{guests}/echo-strategy.wasm"
[services.default]
strategies = ["echo"]
"#
    .replace("{guests}", env!("MENDER_GUEST_DIR"));
    let rt = mender::Runtime::builder()
        .config_str(&toml, "test.toml")
        .unwrap()
        .secret("registered-secret-value")
        .build()
        .unwrap();
    let leaky = Failure::new(
        ErrorKind::Auth,
        "401 Authorization: Bearer ghp_0123456789abcdefghijABCDEFGHIJ; echo registered-secret-value",
    )
    .with_status(401);
    let script = Script::failing(leaky, 1);
    let err = call(
        &rt,
        &script,
        CallSpec::new("github", "get").tag("team", "infra"),
    )
    .await
    .unwrap_err();
    // echo-strategy fails the call with exactly what it was given.
    let seen = &err.reason;
    assert!(seen.contains("github"), "{seen}");
    assert!(seen.contains("infra"), "{seen}");
    assert!(seen.contains("[REDACTED]"), "{seen}");
    assert!(!seen.contains("ghp_0123456789"), "{seen}");
    assert!(!seen.contains("registered-secret-value"), "{seen}");
    assert!(
        !err.history[0].message.contains("ghp_"),
        "history is redacted too"
    );
}

/// Issue #15's leaks: secrets in the forms they travel in, in the message,
/// the operation and the call's and failure's tags, never reach a plugin.
#[tokio::test(start_paused = true)]
async fn plugins_see_no_secret_in_any_encoding_operation_or_tag() {
    let toml = r#"
[plugins.echo]
path = "{guests}/echo-strategy.wasm"
[services.default]
strategies = ["echo"]
"#
    .replace("{guests}", env!("MENDER_GUEST_DIR"));
    let rt = mender::Runtime::builder()
        .config_str(&toml, "test.toml")
        .unwrap()
        .secret("registered-secret-value")
        .build()
        .unwrap();
    // (text in the message, the part that must not reach the plugin)
    let leaks = [
        ("registered%2Dsecret%2Dvalue", "secret%2Dvalue"),
        ("REGISTERED-SECRET-VALUE", "SECRET-VALUE"),
        ("registered-secret-\nvalue", "secret-\nvalue"),
        ("registered-secret\\u002dvalue", "secret\\u002dvalue"),
        (
            "QmVhcmVyIGdocF9BQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWjAxMjM0NQ==",
            "QmVhcmVy",
        ),
        (
            "{\"Authorization\":\"Basic dXNlcjpodW50ZXIy\"}",
            "dXNlcjpodW50ZXIy",
        ),
        (
            "{\"Authorization\": \"token opaque-tok-3141\"}",
            "opaque-tok-3141",
        ),
        ("{\"Authorization\": \"Bearer abc\\/def-2718\"}", "def-2718"),
        (
            "https://hooks.slack.com/services/T01/B02/slackhookpath99",
            "slackhookpath99",
        ),
        ("postgres://app:p@ss-1618@db:5432/app", "ss-1618"),
        ("redis://:redis-pass-1414@cache:6379", "redis-pass-1414"),
        ("cb%3Faccess_token%3Denc-tok-1732%26x%3D1", "enc-tok-1732"),
        (
            "aws_secret_access_key=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLE",
            "wJalrXUtnFEMI",
        ),
        (
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "4eC39HqLyjWDarjtT1zdp7dc",
        ),
        ("glpat-abcdefghij0123456789", "abcdefghij0123456789"),
        (
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "abcdefghijklmnopqrstuvwxyzABCDEFGH",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAA",
        ),
    ];
    let message: Vec<&str> = leaks.iter().map(|(text, _)| *text).collect();
    let leaky = Failure::new(ErrorKind::Auth, message.join(" | "))
        .with_status(401)
        .with_tag("upstream-authorization", "Bearer failuretagsecret99");
    let script = Script::failing(leaky, 1);
    let spec = CallSpec::new("github", "GET /repos?api_key=opsecret-4242&page=2")
        .tag("team", "infra")
        .tag("x-api-key", "tagsecret-777")
        .tag("note", "token=tagsecret-888");
    let err = call(&rt, &script, spec).await.unwrap_err();
    // echo-strategy fails the call with exactly what it was given.
    let seen = &err.reason;
    assert!(seen.contains("infra") && seen.contains("page=2"), "{seen}");
    let json_newline = "secret-\\nvalue";
    for (_, secret) in leaks {
        assert!(
            !seen.contains(secret),
            "{secret:?} reached the plugin: {seen}"
        );
    }
    assert!(!seen.contains(json_newline), "{seen}");
    for secret in [
        "opsecret-4242",
        "tagsecret-777",
        "tagsecret-888",
        "failuretagsecret99",
    ] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the plugin: {seen}"
        );
    }
    assert!(
        !err.operation.contains("opsecret-4242"),
        "{}",
        err.operation
    );
}

/// An upstream that counts its callers: how many are in at once, and the
/// most there ever were.
#[derive(Clone, Default)]
struct Gauge {
    now: std::sync::Arc<std::sync::atomic::AtomicU32>,
    most: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Gauge {
    async fn serve(&self, took: Duration) -> Result<String, Failure> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(n, SeqCst);
        tokio::time::sleep(took).await;
        self.now.fetch_sub(1, SeqCst);
        Ok("ok".into())
    }
}

/// `calls` concurrent calls of `took` each through `rt`; the upstream's
/// gauge and every result.
async fn burst(
    rt: &mender::Runtime,
    calls: usize,
    took: Duration,
) -> (
    Gauge,
    Vec<Result<Reply<String>, mender::CallError<Failure>>>,
) {
    let gauge = Gauge::default();
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let (rt, gauge) = (rt.clone(), gauge.clone());
            tokio::spawn(async move {
                let spec = CallSpec::new("api", "get").idempotent(true);
                rt.call(spec, |_| gauge.serve(took)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("call task"));
    }
    (gauge, results)
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_holds_for_a_thousand_calls_whatever_plugins_retry() {
    // A retrying plugin cannot take the calls past the limit: queued
    // attempts wait for a slot, and all are served.
    let rt = runtime(
        r#"
[guardrails]
deadline = "off"
max-in-flight = 8
max-queued = 1000
queue-timeout = "1h"
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "1ms", max-attempts = 10, jitter = "none" }
[services.default]
strategies = ["backoff"]
"#,
    );
    let (gauge, results) = burst(&rt, 1000, Duration::from_millis(10)).await;
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(
        gauge.most.load(SeqCst),
        8,
        "never more than 8 in flight, and 8 used"
    );
    assert!(
        results.iter().all(Result::is_ok),
        "every queued call is served"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_queue_bound_and_timeout_attempts_are_rejected() {
    let rt = runtime(
        r#"
[guardrails]
deadline = "off"
max-in-flight = 8
max-queued = 10
queue-timeout = "50ms"
"#,
    );
    let (gauge, results) = burst(&rt, 1000, Duration::from_secs(1)).await;
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(gauge.most.load(SeqCst), 8);
    let (mut ok, mut queue_full, mut timed_out) = (0, 0, 0);
    for r in &results {
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Rejected, "{}", e.reason);
                let tags = &e.history[0].tags;
                assert!(
                    tags.iter()
                        .any(|(k, v)| k == "rejected-by" && v == "max-in-flight"),
                    "{tags:?}"
                );
                let said = &e.history[0].message;
                if said.contains("no slot came free in 50ms") {
                    timed_out += 1;
                } else if said.contains("8 attempts in flight and 10 queued") {
                    queue_full += 1;
                } else {
                    panic!("unexpected rejection: {said}");
                }
            }
        }
    }
    assert_eq!((ok, timed_out, queue_full), (8, 10, 982));
}
