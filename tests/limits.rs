//! Limits that hold whatever the input.
//!
//! `memory-mib` caps an instance, not each of its memories: hostile
//! components with many memories, or many core instances, are refused at
//! load with a clear message, and the host's memory stays bounded while
//! they try (in a test binary of its own, so that no other suite's
//! allocations blur the RSS bound). And a deadline too far away to
//! represent, from the config or the API, saturates instead of crashing.

use std::path::PathBuf;
use std::time::Duration;

use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime, Step};

/// A hand-written fixture (tests/guests-wat, built by its `build` script).
fn wat_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/guests-wat")
        .join(format!("{name}.wasm"))
}

fn load(fixture: &str, memory_mib: u32) -> Result<Runtime, String> {
    let toml = format!(
        "[limits]\nmemory-mib = {memory_mib}\n[plugins.hostile]\npath = \"{}\"\n",
        wat_fixture(fixture).display()
    );
    Runtime::builder()
        .config_str(&toml, "limits.toml")
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())
}

/// The peak resident set of this process, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn memories_are_capped_together_and_the_host_stays_small() {
    // The fixtures' own strategy fits in one page: it loads under a small
    // cap, so a refusal below is about the attack.
    load("fixed-retry", 1).unwrap_or_else(|e| panic!("{e}"));

    let before = peak_rss_kib();
    // 7 memories of 16 MiB in one core module; 32 core instances of one
    // 16 MiB memory each. Each memory is within `memory-mib` on its own;
    // every byte is written by a start function, so without the
    // per-instance cap these load and take 112 and 512 MiB of RSS.
    for fixture in ["hostile-many-memories", "hostile-many-instances"] {
        let e = load(fixture, 16).expect_err(fixture);
        assert!(e.contains("plugin `hostile`"), "{e}");
        assert!(
            e.contains("exceeded its memory limit instantiating"),
            "{fixture}: {e}"
        );
        assert!(
            e.contains("over its memory-mib of 16777216 bytes"),
            "{fixture}: {e}"
        );
    }
    let grown_mib = (peak_rss_kib().saturating_sub(before)) >> 10;
    // 16 MiB of plugin memory at most, plus the engines and compiled code
    // of two loads: far under the 512 MiB the second attack takes.
    assert!(grown_mib < 160, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn core_instances_are_capped() {
    let e = load("hostile-instance-flood", 16).expect_err("500 core instances");
    assert!(
        e.contains("exceeded its resource limits instantiating"),
        "{e}"
    );
    assert!(e.contains("instance count too high"), "{e}");
    // As many memories as the issue's attack: refused by their number
    // before their size is even counted.
    let e = load("hostile-twenty-memories", 16).expect_err("20 memories");
    assert!(e.contains("memory count too high"), "{e}");
}

/// The config's and the API's farthest deadlines and timeouts: the call
/// runs (and retries) as if there were none, instead of panicking with
/// "overflow when adding duration to instant".
#[tokio::test(start_paused = true)]
async fn absurdly_far_deadlines_saturate() {
    let rt = Runtime::builder()
        .config_str(
            r#"
[guardrails]
deadline = "500000000000y"
attempt-timeout = "500000000000y"
max-delay = "500000000000y"
[plugins.wat]
path = "{fixed}"
[services.default]
strategies = ["wat"]
"#
            .replace("{fixed}", &wat_fixture("fixed-retry").display().to_string())
            .as_str(),
            "far.toml",
        )
        .unwrap()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let specs = [
        CallSpec::new("api", "get").idempotent(true),
        CallSpec::new("api", "get")
            .idempotent(true)
            .deadline(Duration::MAX)
            .attempt_timeout(Duration::MAX),
    ];
    for spec in specs {
        let mut failures = 1;
        let reply: Reply<String> = rt
            .call(spec, |_| {
                let fail = std::mem::replace(&mut failures, 0) > 0;
                async move {
                    if fail {
                        Err(Failure::new(ErrorKind::Connect, "refused"))
                    } else {
                        Ok("ok".to_owned())
                    }
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.value, "ok");
        assert!(matches!(reply.history[0].step, Step::Retry { .. }));
    }
}
