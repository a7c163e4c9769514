//! The real `mender` binary: `check` and `demo`.

mod common;

use std::process::Command;
use std::time::Duration;

fn mender(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(args)
        .output()
        .expect("running mender");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_every_bundled_plugin() {
    for (name, world) in [
        ("exponential-backoff", "strategy-plugin"),
        ("circuit-breaker", "strategy-plugin"),
        ("static-fallback", "fallback-plugin"),
        ("cached-fallback", "fallback-plugin"),
        ("rate-limiter", "strategy-plugin"),
        ("failover", "strategy-plugin"),
        ("hedge", "strategy-plugin"),
    ] {
        let path = common::guest(name);
        let (ok, out, err) = mender(&["check", path.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        assert!(out.contains(&format!("ok, a {world} component")), "{out}");
        // The bundled plugins are built with the guest SDK: contract 0.2.
        assert!(out.contains("contract: mender:plugin@0.2.0"), "{out}");
        assert!(out.contains("mender:plugin/"), "{out}");
        assert!(
            !out.contains("wasi:"),
            "bundled plugins import no WASI: {out}"
        );
    }
}

#[test]
fn check_rejects_a_non_component_with_a_clear_message() {
    let path = std::env::temp_dir().join(format!("mender-cli-{}.wasm", std::process::id()));
    std::fs::write(&path, b"not wasm at all").unwrap();
    let (ok, _, err) = mender(&["check", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("not a WebAssembly file"), "{err}");
}

#[test]
fn check_validates_a_config_and_its_plugins() {
    let dir = std::env::temp_dir().join(format!("mender-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[plugins.b]\nbundled = \"circuit-breaker\"\n[services.api]\nstrategies = [\"b\"]\n",
    )
    .unwrap();
    let (ok, out, err) = mender(&["check", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("plugin b: strategy-plugin, contract mender:plugin@0.2.0"),
        "{out}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[services.api]\nstrategies = [\"b\"]\n").unwrap();
    let (ok, _, err) = mender(&["check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.toml:2:15"), "{err}");

    // `[mcp]` is checked too: its servers are listed, a typo is located.
    let gateway = dir.join("gateway.toml");
    std::fs::write(
        &gateway,
        "[mcp.servers.time]\ncommand = \"mcp-server-time\"\noptional = true\n",
    )
    .unwrap();
    let (ok, out, err) = mender(&["check", gateway.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("mcp server time: `mcp-server-time` (optional) -> service time"),
        "{out}"
    );
    let typo = dir.join("typo.toml");
    std::fs::write(
        &typo,
        "[mcp.servers.time]\ncommand = \"x\"\ncall-timout = \"1s\"\n",
    )
    .unwrap();
    let (ok, _, err) = mender(&["check", typo.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("typo.toml:3:") && err.contains("call-timout"),
        "{err}"
    );
}

#[test]
fn demo_is_deterministic_and_shows_recovery() {
    let (ok, first, err) = mender(&["demo", "--seed", "3"]);
    assert!(ok, "{err}");
    let (_, second, _) = mender(&["demo", "--seed", "3"]);
    assert_eq!(first, second, "same seed, same run");
    let (_, other, _) = mender(&["demo", "--seed", "4"]);
    assert_ne!(first, other, "another seed, another run");

    for expected in [
        "circuit opened",
        "retry in",
        "served by cached",
        "refresh credentials",
        "rate-limited 429",
        "timeout",
        "summary",
        "[REDACTED]",
    ] {
        assert!(
            first.contains(expected),
            "demo output lacks {expected:?}:\n{first}"
        );
    }
    assert!(
        !first.contains("ghp_demoToken"),
        "the token must be redacted:\n{first}"
    );
}

fn wat_fixture(name: &str) -> String {
    common::tools::workspace()
        .join(format!("tests/guests-wat/{name}.wasm"))
        .display()
        .to_string()
}

/// `check` says which contract a component targets: 0.1 for a plugin built
/// before 0.2 (the hand-written WAT, the pinned Rust fixture), 0.2 for one
/// built with the SDK; a version the host does not implement is refused
/// with the version named.
#[test]
fn check_names_the_contract_a_component_targets() {
    for (path, contract) in [
        (wat_fixture("fixed-retry"), "mender:plugin@0.1.0"),
        (
            common::guest("noop-strategy").display().to_string(),
            "mender:plugin@0.1.0",
        ),
        (
            common::guest("noop-strategy-v0-2").display().to_string(),
            "mender:plugin@0.2.0",
        ),
    ] {
        let (ok, out, err) = mender(&["check", &path]);
        assert!(ok, "{path}: {err}");
        assert!(out.contains(&format!("contract: {contract}")), "{out}");
    }
    let future = common::guest("contract-v0-9").display().to_string();
    let (ok, _, err) = mender(&["check", &future]);
    assert!(!ok);
    assert!(err.contains("mender:plugin/strategy@0.9.0"), "{err}");
}

/// `check FILE.wasm` starts the component under the limits, as loading
/// would: one that links but can never start is reported as failing.
#[test]
fn check_starts_the_component_under_the_limits() {
    let (ok, out, err) = mender(&["check", &wat_fixture("fixed-retry")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("starts: instantiates and accepts an empty config"),
        "{out}"
    );

    let (ok, _, err) = mender(&["check", &wat_fixture("hostile-huge-memory")]);
    assert!(!ok);
    assert!(
        err.contains("cannot start under the default [limits]"),
        "{err}"
    );
    assert!(err.contains("exceeded its memory limit"), "{err}");

    // With a config beside it, its [limits] apply: a short init-timeout
    // stops the looping start function quickly.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mender.toml");
    std::fs::write(&config, "[limits]\ninit-timeout = \"300ms\"\n").unwrap();
    let (ok, _, err) = mender(&[
        "check",
        config.to_str().unwrap(),
        &wat_fixture("hostile-looping-start"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("cannot start under its config's [limits]"),
        "{err}"
    );
    assert!(
        err.contains("exceeded its deadline of 300ms instantiating"),
        "{err}"
    );
}

/// A FIFO at `dir/name`.
#[cfg(unix)]
fn fifo(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let made = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
    path
}

/// A FIFO named as a plugin fails `check` at once instead of hanging.
#[cfg(unix)]
#[test]
fn check_refuses_a_fifo_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "p.wasm");
    let config = dir.path().join("mender.toml");
    std::fs::write(&config, "[plugins.p]\npath = \"p.wasm\"\n").unwrap();
    for file in [&fifo, &config] {
        let (ok, _, err) = mender(&["check", file.to_str().unwrap()]);
        assert!(!ok);
        assert!(err.contains("is not a regular file (a FIFO)"), "{err}");
    }
}

/// Runs `mender` and kills it after `limit`: `None` when it had to be
/// killed (it hung).
#[cfg(unix)]
fn mender_within(args: &[&str], limit: Duration) -> Option<(bool, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running mender");
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Some((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A FIFO (or a device) named as the config file fails at once, in every
/// command that reads one, instead of waiting for a writer forever.
#[cfg(unix)]
#[test]
fn commands_refuse_a_config_that_is_a_fifo_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "mender.toml");
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["check", fifo],
        vec!["mcp-proxy", "--config", fifo],
        vec!["status", "--config", fifo],
        vec!["demo", "--quiet", "--config", fifo],
        vec!["check", "/dev/zero"],
    ] {
        let Some((ok, err)) = mender_within(&args, Duration::from_secs(20)) else {
            panic!("`mender {}` hung on a FIFO config", args.join(" "));
        };
        assert!(!ok, "{args:?}");
        assert!(err.contains("is not a regular file ("), "{args:?}: {err}");
    }
}

/// `demo --config` names the pipeline its config sets up, not the
/// embedded one's.
#[test]
fn demo_prints_the_configured_pipeline() {
    let (ok, out, err) = mender(&["demo", "--seed", "1", "--quiet"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("pipeline (demo): breaker → backoff, then fallbacks cached → static"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.toml");
    std::fs::write(
        &config,
        "[plugins.backoff]\nbundled = \"exponential-backoff\"\n[services.default]\nstrategies = [\"backoff\"]\n",
    )
    .unwrap();
    let (ok, out, err) = mender(&[
        "demo",
        "--seed",
        "1",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("pipeline (default): backoff, then fallbacks none"),
        "{out}"
    );
    assert!(!out.contains("breaker"), "{out}");
}
