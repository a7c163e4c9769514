//! Guests that import WASI get a context that grants nothing but what the
//! config says: a probe built for wasm32-wasip2 reports, from inside, what
//! it could reach.

use std::path::Path;
use std::time::Duration;

use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime};
use serde_json::Value;

/// A sandbox layout: `cache/` (the grant) holding `hello.txt`, a symlink
/// to its parent and one to /etc/passwd; `secret.txt` beside it.
fn layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("hello.txt"), "hi from the host").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside the grant").unwrap();
    std::os::unix::fs::symlink(dir.path(), cache.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", cache.join("passwd-link")).unwrap();
    dir
}

fn probe_runtime(cache: &Path, mode: &str, probes: &str) -> Runtime {
    let toml = format!(
        r#"
[plugins.probe]
path = "{guests}/wasi-probe.wasm"
on-fault = "fail-closed"
dirs = [{{ host = "{cache}", guest = "/cache", mode = "{mode}" }}]
config = {probes}
[services.default]
strategies = ["probe"]
"#,
        guests = env!("MENDER_GUEST_DIR"),
        cache = cache.display(),
    );
    Runtime::builder()
        .config_str(&toml, "wasi.toml")
        .unwrap()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one failing call; the probe answers `fail` with its JSON report.
async fn report(rt: &Runtime) -> Value {
    let err = rt
        .call(CallSpec::new("api", "get"), |_| async {
            Err::<String, _>(Failure::new(ErrorKind::Connect, "down"))
        })
        .await
        .map(|r: Reply<String>| r.value)
        .unwrap_err();
    let json = err
        .reason
        .strip_prefix("probe: ")
        .unwrap_or_else(|| panic!("not a probe report: {}", err.reason));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn ok(v: &Value) -> bool {
    v.get("ok").is_some()
}

#[tokio::test]
async fn read_only_grant_reads_inside_and_nothing_else() {
    let dir = layout();
    let rt = probe_runtime(
        &dir.path().join("cache"),
        "read-only",
        r#"{ read = ["/cache/hello.txt", "/cache/../secret.txt", "/cache/link-out/secret.txt", "/cache/passwd-link", "/etc/passwd", "secret.txt"], write = ["/cache/new.txt", "/cache/hello.txt"], list-dir = ["/cache", "/", "/etc"], env = true, stdout = true }"#,
    );
    let r = report(&rt).await;
    assert_eq!(
        r["read"]["/cache/hello.txt"]["ok"], "hi from the host",
        "{r}"
    );
    for escape in [
        "/cache/../secret.txt",
        "/cache/link-out/secret.txt",
        "/cache/passwd-link",
        "/etc/passwd",
        "secret.txt",
    ] {
        assert!(!ok(&r["read"][escape]), "{escape} must be unreachable: {r}");
    }
    assert!(!ok(&r["write"]["/cache/new.txt"]), "read-only grant: {r}");
    assert!(!ok(&r["write"]["/cache/hello.txt"]), "read-only grant: {r}");
    assert!(!dir.path().join("cache/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cache/hello.txt")).unwrap(),
        "hi from the host"
    );
    let listed = r["list-dir"]["/cache"]["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(listed.iter().any(|n| n == "hello.txt"), "{r}");
    assert!(!ok(&r["list-dir"]["/etc"]), "{r}");
    assert_eq!(r["env"]["vars"], 0, "no environment: {r}");
    assert_eq!(r["env"]["args"], 0, "no arguments: {r}");
}

#[tokio::test]
async fn read_write_grant_writes_inside_only() {
    let dir = layout();
    let rt = probe_runtime(
        &dir.path().join("cache"),
        "read-write",
        r#"{ write = ["/cache/new.txt", "/cache/../escaped.txt", "/cache/link-out/escaped.txt", "/tmp/escaped.txt"] }"#,
    );
    let r = report(&rt).await;
    assert!(ok(&r["write"]["/cache/new.txt"]), "{r}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cache/new.txt")).unwrap(),
        "probe"
    );
    for escape in [
        "/cache/../escaped.txt",
        "/cache/link-out/escaped.txt",
        "/tmp/escaped.txt",
    ] {
        assert!(!ok(&r["write"][escape]), "{escape}: {r}");
    }
    assert!(!dir.path().join("escaped.txt").exists());
}

#[tokio::test(start_paused = true)]
async fn wasi_clocks_are_the_host_clock() {
    let dir = layout();
    let rt = probe_runtime(
        &dir.path().join("cache"),
        "read-only",
        r#"{ clock = true }"#,
    );
    let before = report(&rt).await["clock"]["wall_ms"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let after = report(&rt).await["clock"]["wall_ms"].as_u64().unwrap();
    // An hour of virtual time passed, and no real hour: WASI's wall clock
    // follows the host clock. It reads the host time at the start of the
    // call plus real time within it, in whole milliseconds, so two readings
    // may differ from the virtual hour by a few milliseconds either way.
    let passed = after as i64 - before as i64;
    assert!((passed - 3_600_000).abs() < 50, "{before} -> {after}");
}

#[test]
fn a_missing_granted_directory_is_a_config_error() {
    let toml = "[plugins.p]\nbundled = \"static-fallback\"\ndirs = [{ host = \"/nonexistent/cache\", guest = \"/cache\", mode = \"read-only\" }]\n";
    let err = match Runtime::builder().config_str(toml, "d.toml") {
        Ok(_) => panic!("a missing directory must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("d.toml:1:1:"), "{err}");
    assert!(
        err.contains("/nonexistent/cache is not a directory"),
        "{err}"
    );
}
