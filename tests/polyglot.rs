//! The plugins written in Python, JavaScript and C, through the real host:
//! a `Runtime` from a mender.toml string on real failing calls (virtual
//! time), and `mender conformance` with the scenarios each one ships.
//!
//! `plugins/build-polyglot` builds them into `target/polyglot/`. When a
//! component is missing, each test prints a `skipped: …` line (to the
//! terminal, past the test harness's capture) and returns, unless
//! `MENDER_REQUIRE_POLYGLOT=1` (set by `./test`): then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tools::{Suite, require_or_skip, workspace};
use common::{Script, fail};
use mender::conformance::ScenarioFile;
use mender::{CallSpec, ErrorKind, Failure, Runtime, ServedBy, Step};

/// The built component, or `None` (after saying so) when it is missing and
/// not required.
fn component(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("MENDER_POLYGLOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/polyglot"));
    let path = dir.join(format!("{name}.wasm"));
    if path.exists() {
        return Some(path);
    }
    require_or_skip(
        Suite::Polyglot,
        &format!(
            "{name}: {} was not built (run plugins/build-polyglot or ./test)",
            path.display()
        ),
    );
    None
}

/// Runs the plugin's shipped scenarios through the real `mender
/// conformance`, as a plugin author would.
fn conformance(name: &str, path: &Path) {
    let scenarios = workspace().join("plugins").join(name).join("conformance");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mender"))
        .arg("conformance")
        .arg(path)
        .arg("--scenarios")
        .arg(&scenarios)
        .output()
        .expect("running mender");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Every scenario in the files ran: the library's count and the CLI's agree.
    let files = ScenarioFile::load(&scenarios).unwrap_or_else(|e| panic!("{e}"));
    let n: usize = files.iter().map(|f| f.scenarios.len()).sum();
    assert!(n >= 5, "{name} ships too few scenarios");
    let passed = stdout.lines().filter(|l| l.starts_with("pass  ")).count();
    assert_eq!(passed, n, "{stdout}");
}

fn runtime(name: &str, path: &Path, config: &str, extra: &str) -> Runtime {
    common::runtime(&format!(
        "[guardrails]\nmax-attempts = 6\n{extra}\n\
         [plugins.{name}]\npath = {path:?}\nconfig = {config}\n\
         [services.default]\nstrategies = [\"{name}\"]\n"
    ))
}

fn delays(history: &[mender::AttemptRecord]) -> Vec<u64> {
    history
        .iter()
        .filter_map(|r| match r.step {
            Step::Retry { delay, .. } => Some(delay.as_millis() as u64),
            _ => None,
        })
        .collect()
}

async fn call(
    rt: &Runtime,
    script: &Script,
) -> Result<mender::Reply<String>, mender::CallError<Failure>> {
    rt.call(
        CallSpec::new("api", "tools/call:search").idempotent(true),
        |_| script.next(),
    )
    .await
}

#[test]
fn python_adaptive_retry_conforms() {
    let Some(path) = component("adaptive-retry-py") else {
        return;
    };
    conformance("adaptive-retry-py", &path);
}

#[tokio::test(start_paused = true)]
async fn python_adaptive_retry_in_the_host() {
    let Some(path) = component("adaptive-retry-py") else {
        return;
    };
    let rt = runtime(
        "adaptive",
        &path,
        "{ jitter = 0, budget = { window = 60000, max-retries = 3 } }",
        "",
    );
    // Two connection failures: retried after 200 and 400 ms (linear).
    let started = tokio::time::Instant::now();
    let script = Script::failing(fail(ErrorKind::Connect), 2);
    let reply = call(&rt, &script).await.unwrap();
    assert_eq!(reply.value, "fresh");
    assert_eq!(reply.served_by, ServedBy::Upstream);
    assert_eq!(delays(&reply.history), vec![200, 400]);
    assert_eq!(started.elapsed(), Duration::from_millis(600));

    // An expired token is not retried: the plugin passes, the call fails.
    let script = Script::failing(fail(ErrorKind::Auth), 1);
    let err = call(&rt, &script).await.unwrap_err();
    assert_eq!(script.calls(), 1);
    assert!(
        err.reason.contains("no strategy chose to retry"),
        "{}",
        err.reason
    );

    // The budget (3 retries a minute, kept in the host's state) has one
    // retry left: the next call gets it, then the plugin refuses.
    let script = Script::failing(fail(ErrorKind::Timeout), 2);
    let err = call(&rt, &script).await.unwrap_err();
    assert_eq!(script.calls(), 2);
    assert!(
        err.reason.contains("retry budget exhausted"),
        "{}",
        err.reason
    );
    let key = ("adaptive".into(), "api".into(), "budget_exhausted".into());
    assert_eq!(rt.plugin_metrics().counters().get(&key), Some(&1));
    assert_eq!(rt.plugins()[0].faults, 0);
}

#[test]
fn javascript_ratelimit_aware_conforms() {
    let Some(path) = component("ratelimit-aware-js") else {
        return;
    };
    conformance("ratelimit-aware-js", &path);
}

#[tokio::test(start_paused = true)]
async fn javascript_ratelimit_aware_in_the_host() {
    let Some(path) = component("ratelimit-aware-js") else {
        return;
    };
    let rt = runtime("limiter", &path, "{ max-wait = 10000 }", "");
    // A 429 with Retry-After: 2 s is retried after exactly 2 s.
    let started = tokio::time::Instant::now();
    let limited = Failure::new(ErrorKind::RateLimited, "HTTP 429")
        .with_status(429)
        .with_retry_after(Duration::from_secs(2));
    let script = Script::failing(limited.clone(), 1);
    let reply = call(&rt, &script).await.unwrap();
    assert_eq!(reply.value, "fresh");
    assert_eq!(delays(&reply.history), vec![2000]);
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // Successes ride the plugin's until-failure lease: 100 calls, no Wasm
    // call before any of them.
    let before = rt.plugins()[0].hook_calls;
    for _ in 0..100 {
        call(&rt, &Script::default()).await.unwrap();
    }
    assert!(
        rt.plugins()[0].hook_calls - before <= 1,
        "{:?}",
        rt.plugins()
    );

    // A 429 asking for longer than max-wait fails the call at once.
    let long = Failure::new(ErrorKind::RateLimited, "HTTP 429")
        .with_status(429)
        .with_retry_after(Duration::from_secs(60));
    let err = call(&rt, &Script::failing(long, 1)).await.unwrap_err();
    assert!(
        err.reason.contains("longer than max-wait"),
        "{}",
        err.reason
    );

    // While another call's 429 blocks the service, a new call waits in
    // admission instead of earning another 429.
    let blocked = tokio::time::Instant::now();
    let script = Script::failing(limited, 1);
    let (a, b) = tokio::join!(call(&rt, &script), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        call(&rt, &Script::default()).await
    });
    a.unwrap();
    b.unwrap();
    assert!(blocked.elapsed() >= Duration::from_secs(2));
    assert_eq!(rt.plugins()[0].faults, 0);
}

#[test]
fn c_fixed_schedule_conforms() {
    let Some(path) = component("fixed-schedule-c") else {
        return;
    };
    conformance("fixed-schedule-c", &path);
}

#[tokio::test(start_paused = true)]
async fn c_fixed_schedule_in_the_host() {
    let Some(path) = component("fixed-schedule-c") else {
        return;
    };
    let rt = runtime("schedule", &path, "{ delays = [50, 150, 400] }", "");
    let started = tokio::time::Instant::now();
    let script = Script::failing(fail(ErrorKind::Resource), 3);
    let reply = call(&rt, &script).await.unwrap();
    assert_eq!(delays(&reply.history), vec![50, 150, 400]);
    assert_eq!(started.elapsed(), Duration::from_millis(600));

    // Past the schedule, it gives up.
    let script = Script::failing(fail(ErrorKind::Connect), 10);
    let err = call(&rt, &script).await.unwrap_err();
    assert_eq!(script.calls(), 4);
    assert!(err.reason.contains("schedule exhausted"), "{}", err.reason);

    // A bad config is refused at load, with the plugin's own message.
    let bad = mender::Runtime::builder()
        .config_str(
            &format!("[plugins.schedule]\npath = {path:?}\nconfig = {{ delays = \"soon\" }}\n"),
            "bad.toml",
        )
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("plugin `schedule`") && bad.contains("expected {}"),
        "{bad}"
    );
}

/// Without a built component a test skips, saying so past the harness's
/// capture, unless MENDER_REQUIRE_POLYGLOT=1, which fails it.
#[test]
fn without_its_component_a_test_skips_unless_required() {
    common::tools::assert_skips_unless_required(
        Suite::Polyglot,
        "c_fixed_schedule_conforms",
        &[("MENDER_POLYGLOT_DIR", "/nonexistent")],
    );
}
