//! The conformance kit: every bundled plugin passes the scenarios it ships;
//! a deliberately wrong plugin fails them with a readable diff; scenario
//! files with mistakes are refused with file, line and column; and the
//! real `mender conformance` exits 0, 1 or 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::workspace;
use mender::conformance::{ScenarioFile, Subject};

fn scenarios(plugin: &str) -> PathBuf {
    workspace().join("plugins").join(plugin).join("conformance")
}

const BUNDLED: [&str; 9] = [
    "exponential-backoff",
    "circuit-breaker",
    "static-fallback",
    "cached-fallback",
    "rate-limiter",
    "failover",
    "bulkhead",
    "adaptive-timeout",
    "hedge",
];

#[test]
fn every_bundled_plugin_passes_its_scenarios() {
    for name in BUNDLED {
        let files = ScenarioFile::load(&scenarios(name)).unwrap_or_else(|e| panic!("{e}"));
        let subject = Subject::load(common::guest(name).to_str().unwrap()).unwrap();
        let report = subject.run(&files, None);
        assert!(report.passed(), "{name}:\n{report}");
        assert!(report.results.len() >= 3, "{name} ships too few scenarios");
    }
}

#[test]
fn a_wrong_plugin_fails_with_the_first_divergence() {
    let files = ScenarioFile::load(&scenarios("exponential-backoff")).unwrap();
    let subject = Subject::load(common::guest("naive-backoff").to_str().unwrap()).unwrap();
    let report = subject.run(&files, None);
    assert!(!report.passed());
    let text = report.to_string();

    // The fixed 100 ms delay diverges at the second attempt of the first
    // scenario, and the report says so in words.
    let first = &report.results[0];
    let d = first.outcome.as_ref().unwrap_err();
    assert_eq!((d.step, d.steps), (2, 3), "{text}");
    assert_eq!(d.got, "retry after 100ms");
    assert_eq!(d.expected, "retry, after 200ms");
    assert_eq!(d.why, "the delay is 100ms, not 200ms");
    assert!(
        text.contains(
            "FAIL  backoff.toml: delays double from base per attempt\n      \
             step 2 of 3, at 0ms: on-error timeout (attempt 2)\n        \
             expected: retry, after 200ms\n        \
             got:      retry after 100ms\n        \
             because:  the delay is 100ms, not 200ms"
        ),
        "{text}"
    );

    // It retries auth errors, which the suite rules out.
    let auth = report
        .results
        .iter()
        .find(|r| r.name.contains("never retries auth"))
        .unwrap();
    let d = auth.outcome.as_ref().unwrap_err();
    assert_eq!(d.repetition, Some((1, 3)));
    assert!(
        d.input.starts_with("on-error auth (attempt 1, status 401"),
        "{}",
        d.input
    );
    assert!(
        text.contains("because:  the decision is `retry`, not one of pass"),
        "{text}"
    );

    // Properties it happens to meet still pass: the report is per scenario.
    assert!(report.results.iter().any(|r| r.outcome.is_ok()), "{text}");
    assert!(text.ends_with("failed"), "{text}");
}

#[test]
fn runs_are_deterministic() {
    // Full jitter draws from the seeded random source: two runs of the
    // same file see the same delays, and the report is identical.
    let files = ScenarioFile::load(&scenarios("exponential-backoff")).unwrap();
    let subject = Subject::load("bundled:exponential-backoff").unwrap();
    let narrow = ScenarioFile::parse(
        r#"
[[scenario]]
name = "full jitter, pinned to what seed 1 draws"
config = { base = "1s", jitter = "full", max-attempts = 10 }
[[scenario.step]]
on-error = { kind = "connect" }
expect = { decision = "retry", delay-max = "0ms" }
"#,
        Path::new("pin.toml"),
    )
    .unwrap();
    let a = subject.run(std::slice::from_ref(&narrow), None).to_string();
    let b = subject.run(std::slice::from_ref(&narrow), None).to_string();
    assert_eq!(a, b);
    assert!(a.contains("got:      retry after"), "{a}");
    assert_eq!(
        subject.run(&files, None).to_string(),
        subject.run(&files, None).to_string()
    );
}

#[test]
fn scenario_mistakes_are_refused_with_where() {
    let err = ScenarioFile::parse(
        "[[scenario]]\nname = \"x\"\n[[scenario.step]]\non-error = { kind = \"conect\" }\n",
        Path::new("bad.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("bad.toml:4:"), "{err}");
    assert!(err.contains("conect"), "{err}");

    let err = ScenarioFile::parse(
        "[[scenario]]\nname = \"two inputs\"\n[[scenario.step]]\nsucceed = 1\nadvance = \"1s\"\n",
        Path::new("two.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("scenario `two inputs`, step 1: set exactly one of"),
        "{err}"
    );

    let err = ScenarioFile::parse(
        "[[scenario]]\nname = \"x\"\n[[scenario.step]]\nsucceed = 1\nexpect = { decison = \"retry\" }\n",
        Path::new("typo.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("typo.toml:5:") && err.contains("decison"),
        "{err}"
    );

    // Contract 0.2's steps: a mistake inside `succeed = { … }` is named,
    // and so is a permit that names nothing.
    let err = ScenarioFile::parse(
        "[[scenario]]\nname = \"x\"\n[[scenario.step]]\nsucceed = { count = 2, latncy = \"5ms\" }\n",
        Path::new("latency.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("latency.toml:4:") && err.contains("unknown field `latncy`"),
        "{err}"
    );
    let err = ScenarioFile::parse(
        "[[scenario]]\nname = \"p\"\n[[scenario.step]]\nsucceed = { permit = \"latest\" }\n",
        Path::new("permit.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("scenario `p`, step 1: permit \"latest\": expected a number, \"last\", \"first\" or \"none\""),
        "{err}"
    );
}

#[test]
fn a_step_for_the_wrong_world_is_a_divergence_not_a_crash() {
    let file = ScenarioFile::parse(
        "[[scenario]]\nname = \"serve on a strategy\"\n[[scenario.step]]\nserve = { kind = \"connect\" }\n",
        Path::new("world.toml"),
    )
    .unwrap();
    let report = Subject::load("bundled:exponential-backoff")
        .unwrap()
        .run(&[file], None);
    let text = report.to_string();
    assert!(!report.passed());
    assert!(
        text.contains("`serve` does not exist, the plugin is a strategy"),
        "{text}"
    );
}

fn mender(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(args)
        .output()
        .expect("running mender");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_codes() {
    let backoff = scenarios("exponential-backoff");
    let backoff = backoff.to_str().unwrap();

    let (code, out, err) = mender(&[
        "conformance",
        "bundled:exponential-backoff",
        "--scenarios",
        backoff,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("pass  backoff.toml: delays double from base per attempt"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");

    let naive = common::guest("naive-backoff");
    let (code, out, _) = mender(&[
        "conformance",
        naive.to_str().unwrap(),
        "--scenarios",
        backoff,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  backoff.toml:"), "{out}");
    assert!(out.contains("expected: retry, after 200ms"), "{out}");

    // --config is the plugin's config for files that set none: the cached
    // fallback's scenarios pass with any max-age over 11s, and fail with 1s.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cfg.toml");
    std::fs::write(&config, "max-age = \"1s\"\n").unwrap();
    let cached = scenarios("cached-fallback").join("cached.toml");
    let (code, out, _) = mender(&[
        "conformance",
        "bundled:cached-fallback",
        "--scenarios",
        cached.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  cached.toml: serves the recorded result with its age"),
        "{out}"
    );

    let (code, _, err) = mender(&[
        "conformance",
        "bundled:no-such-plugin",
        "--scenarios",
        backoff,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no bundled plugin `no-such-plugin`"), "{err}");

    let (code, _, err) = mender(&["conformance", naive.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no --scenarios given"), "{err}");
}

#[test]
fn routing_steps_and_expectations_check_where_an_answer_sends_the_attempt() {
    // The echo fixture answers `retry-on` the upstream its `echo-route`
    // tag names, in range or not.
    let subject = Subject::load(common::guest("echo-strategy").to_str().unwrap()).unwrap();
    let file = ScenarioFile::parse(
        r#"
[[scenario]]
name = "routes, good and bad"
upstreams = ["a", "b"]
[[scenario.step]]
on-error = { kind = "connect", upstream = 1, tags = { echo-route = "0" } }
expect = { decision = "retry-on", upstream = 0, routed = true }
[[scenario.step]]
on-error = { kind = "connect", tags = { echo-route = "5" } }
expect = { fault = true }

[[scenario]]
name = "without upstreams a route is a plain retry"
[[scenario.step]]
on-error = { kind = "connect", tags = { echo-route = "5" } }
expect = { decision = "retry", routed = false }

[[scenario]]
name = "a wrong expectation is reported"
upstreams = ["a", "b"]
[[scenario.step]]
on-error = { kind = "connect", tags = { echo-route = "0" } }
expect = { upstream = 1 }
"#,
        Path::new("routing.toml"),
    )
    .unwrap();
    let report = subject.run(std::slice::from_ref(&file), None);
    let text = report.to_string();
    let passed: Vec<bool> = report.results.iter().map(|r| r.outcome.is_ok()).collect();
    assert_eq!(passed, [true, true, false], "{text}");
    assert!(
        text.contains("got:      retry-on upstream 0 after 0ms"),
        "{text}"
    );
    assert!(
        text.contains("the answer routes to upstream 0, not 1"),
        "{text}"
    );
}
