//! Hot reload through the public API: plugins and config swapped while
//! calls are in flight, nothing lost, broken versions never serving, state
//! kept, compiled artefacts reused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Script, fail, guest};
use mender::{CallSpec, ErrorKind, ReloadResult, Runtime, Step};

/// A config whose strategy `s` is the component at `plugin`, with retries
/// that wait at most 1 ms (the guardrail clamps the plugin's delays).
fn config(plugin: &Path) -> String {
    format!(
        r#"
[guardrails]
max-attempts = 3
max-delay = "1ms"

[plugins.s]
path = "{}"

[services.default]
strategies = ["s"]
"#,
        plugin.display()
    )
}

/// Copies the fixture `name` over `dest` the way a build does: written
/// beside it, then renamed into place.
fn install(name: &str, dest: &Path) {
    let tmp = dest.with_extension("tmp");
    std::fs::copy(guest(name), &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    plugin: PathBuf,
    config: PathBuf,
    cache: PathBuf,
}

fn setup(first: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("s.wasm");
    install(first, &plugin);
    let config = dir.path().join("mender.toml");
    std::fs::write(&config, self::config(&plugin)).unwrap();
    let cache = dir.path().join("cache");
    Setup {
        plugin,
        config,
        cache,
        _dir: dir,
    }
}

fn build(s: &Setup) -> Runtime {
    Runtime::builder()
        .config_file(&s.config)
        .unwrap()
        .cache_dir(&s.cache)
        .seed(3)
        .build()
        .unwrap()
}

/// The first step of a call whose first attempt failed: what the strategy
/// decided.
fn first_decision(history: &[mender::AttemptRecord]) -> &Step {
    &history.first().expect("a failed attempt").step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load_lose_no_call_and_never_serve_a_broken_version() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    // Which logic decided calls started after each swap: (phase, decision).
    // Calls that start while a swap is under way may run on either version.
    const SWAPPING: u64 = u64::MAX;
    let phase = Arc::new(AtomicU64::new(0));
    let decisions = Arc::new(std::sync::Mutex::new(Vec::<(u64, bool)>::new()));

    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let (rt, stop, started, finished, phase, decisions) = (
            rt.clone(),
            stop.clone(),
            started.clone(),
            finished.clone(),
            phase.clone(),
            decisions.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // Half the calls fail once (then succeed), half succeed.
                let failing = (i + t).is_multiple_of(2);
                let script = if failing {
                    Script::new([Err(fail(ErrorKind::Connect))])
                } else {
                    Script::default()
                };
                let phase_at_start = phase.load(Ordering::SeqCst);
                started.fetch_add(1, Ordering::Relaxed);
                let result = rt
                    .call(CallSpec::new("svc", "read").idempotent(true), |_| {
                        let script = script.clone();
                        async move { script.next().await }
                    })
                    .await;
                finished.fetch_add(1, Ordering::Relaxed);
                let history = match &result {
                    Ok(reply) => reply.history.clone(),
                    Err(e) => e.history.clone(),
                };
                if failing {
                    let retried = matches!(first_decision(&history), Step::Retry { .. });
                    decisions.lock().unwrap().push((phase_at_start, retried));
                    // Only the echo fixture fails a call; backoff retries it.
                    assert_eq!(result.is_ok(), retried, "{history:?}");
                } else {
                    assert!(result.is_ok() && history.is_empty(), "{history:?}");
                }
                tokio::task::yield_now().await;
            }
        }));
    }

    // good → good' → broken (smoke check) → broken (not a component) →
    // good, twice over, each while the tasks keep calling.
    let mut expect_retry = vec![(0u64, true)];
    for round in 0..2u64 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        install("echo-strategy", &s.plugin);
        phase.store(SWAPPING, Ordering::SeqCst);
        let report = rt.reload().await.unwrap();
        assert_eq!(report.loaded, ["s"]);
        phase.store(round * 10 + 1, Ordering::SeqCst);
        expect_retry.push((round * 10 + 1, false));

        tokio::time::sleep(Duration::from_millis(150)).await;
        install("trap-strategy", &s.plugin);
        let report = rt.reload().await.unwrap();
        assert_eq!(report.refused.len(), 1, "{report:?}");
        assert!(report.refused[0].1.contains("smoke check"), "{report:?}");
        let status = rt.reload_status();
        assert!(
            status
                .error
                .as_deref()
                .unwrap()
                .starts_with("reload failed:"),
            "{status:?}"
        );

        tokio::time::sleep(Duration::from_millis(150)).await;
        std::fs::write(&s.plugin, b"not a component at all").unwrap();
        let report = rt.reload().await.unwrap();
        assert!(
            report.refused[0].1.contains("not a WebAssembly file"),
            "{report:?}"
        );

        tokio::time::sleep(Duration::from_millis(150)).await;
        install("exponential-backoff", &s.plugin);
        phase.store(SWAPPING, Ordering::SeqCst);
        let report = rt.reload().await.unwrap();
        assert_eq!(report.loaded, ["s"]);
        assert_eq!(rt.reload_status().error, None);
        phase.store(round * 10 + 2, Ordering::SeqCst);
        expect_retry.push((round * 10 + 2, true));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a calling task panicked");
    }

    // Every call got exactly one outcome.
    let (started, finished) = (
        started.load(Ordering::Relaxed),
        finished.load(Ordering::Relaxed),
    );
    assert_eq!(started, finished);
    assert!(finished > 1000, "only {finished} calls ran");
    // Calls that started after a swap was applied ran on the new logic.
    let decisions = decisions.lock().unwrap();
    for (phase, retry) in expect_retry {
        let of_phase: Vec<bool> = decisions
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, r)| *r)
            .collect();
        assert!(!of_phase.is_empty(), "no failing call in phase {phase}");
        assert!(
            of_phase.iter().all(|r| *r == retry),
            "phase {phase}: expected retry={retry}"
        );
    }
    // The refused versions never ran a hook for a live call.
    let status = &rt.plugins()[0];
    assert_eq!(status.faults, 0, "{status:?}");
    assert_eq!(status.version, rt.reload_status().generation);
    assert_eq!(rt.reload_status().generation, 1 + 4 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_stays_open_across_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("breaker.wasm");
    std::fs::copy(guest("circuit-breaker"), &plugin).unwrap();
    let path = dir.path().join("mender.toml");
    let text = |probes: u32| {
        format!(
            r#"
[guardrails]
max-attempts = 1

[plugins.breaker]
path = "{}"
config = {{ failure-threshold = 3, open-for = "1h", half-open-probes = {probes} }}

[services.default]
strategies = ["breaker"]
"#,
            plugin.display()
        )
    };
    std::fs::write(&path, text(1)).unwrap();
    let rt = Runtime::builder()
        .config_file(&path)
        .unwrap()
        .no_cache()
        .build()
        .unwrap();
    let upstream = Script::failing(fail(ErrorKind::Connect), 100);
    for _ in 0..5 {
        let up = upstream.clone();
        let _ = rt
            .call(CallSpec::new("api", "read"), |_| {
                let up = up.clone();
                async move { up.next().await }
            })
            .await;
    }
    let reached = upstream.calls();
    assert!(reached <= 4, "the circuit never opened ({reached} calls)");

    // A new version of the breaker (its table changed), same state store.
    std::fs::write(&path, text(2)).unwrap();
    let report = rt.reload().await.unwrap();
    assert_eq!(report.loaded, ["breaker"]);
    let up = upstream.clone();
    let err = rt
        .call(CallSpec::new("api", "read"), |_| {
            let up = up.clone();
            async move { up.next().await }
        })
        .await
        .unwrap_err();
    assert_eq!(
        upstream.calls(),
        reached,
        "the open circuit let a call through"
    );
    assert_eq!(err.history[0].kind, ErrorKind::Rejected, "{err:?}");
}

#[tokio::test]
async fn compiled_plugins_are_cached_and_a_damaged_entry_is_rebuilt() {
    let s = setup("exponential-backoff");
    let first = build(&s);
    assert_eq!(
        (first.cache_stats().hits, first.cache_stats().misses),
        (0, 1)
    );

    // A reload of unchanged files compiles nothing, not even from cache.
    let report = first.reload().await.unwrap();
    assert_eq!(report.unchanged, ["s"]);
    assert_eq!(
        (first.cache_stats().hits, first.cache_stats().misses),
        (0, 1)
    );

    // A restart loads from the cache.
    let second = build(&s);
    assert_eq!(
        (second.cache_stats().hits, second.cache_stats().misses),
        (1, 0)
    );

    // Damage the entry: detected, deleted, rebuilt, and the plugin loads.
    let entry = cache_entries(&s.cache).pop().expect("one cache entry");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::fs::metadata(entry.parent().unwrap()).unwrap();
        assert_eq!(
            dir.permissions().mode() & 0o777,
            0o700,
            "the cache is private"
        );
    }
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, bytes).unwrap();
    let third = build(&s);
    let stats = third.cache_stats();
    assert_eq!((stats.corrupt, stats.misses, stats.hits), (1, 1, 0));
    assert!(third.plugins()[0].hook_calls == 0);
    let fourth = build(&s);
    assert_eq!(fourth.cache_stats().hits, 1, "the rebuilt entry is used");
}

fn cache_entries(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        for e in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            found.push(e.unwrap().path());
        }
    }
    found
}

#[tokio::test]
async fn a_bad_config_keeps_the_old_one_serving() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{good}\n[services.other]\nstrategies = [\"nope\"]\n"),
    )
    .unwrap();
    let err = rt.reload().await.unwrap_err().to_string();
    assert!(
        err.contains("mender.toml:") && err.contains("nope"),
        "{err}"
    );
    let status = rt.reload_status();
    assert_eq!((status.generation, status.failed), (1, 1));
    assert!(status.error.unwrap().contains("nope"));

    // Still served by the old generation: the backoff retries.
    let up = Script::new([Err(fail(ErrorKind::Timeout))]);
    let reply = rt
        .call(CallSpec::new("svc", "read").idempotent(true), |_| {
            let up = up.clone();
            async move { up.next().await }
        })
        .await
        .unwrap();
    assert!(matches!(reply.history[0].step, Step::Retry { .. }));

    std::fs::write(&s.config, good).unwrap();
    rt.reload().await.unwrap();
    let status = rt.reload_status();
    assert_eq!((status.generation, status.error), (2, None));
}

#[tokio::test]
async fn the_state_backend_cannot_change_on_a_reload() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:9/0\"\n{text}"),
    )
    .unwrap();
    let err = rt.reload().await.unwrap_err().to_string();
    assert!(err.contains("[state]") && err.contains("restart"), "{err}");
    assert_eq!(rt.reload_status().generation, 1);
}

#[tokio::test]
async fn a_plugin_with_no_good_version_fails_the_reload_whole() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{text}\n[plugins.t]\npath = \"{}\"\n",
            guest("trap-strategy").display()
        ),
    )
    .unwrap();
    let err = rt.reload().await.unwrap_err().to_string();
    assert!(
        err.contains("plugin `t`") && err.contains("smoke check"),
        "{err}"
    );
    assert_eq!(rt.plugins().len(), 1);
    assert_eq!(rt.reload_status().generation, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_when_a_file_changes() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _watcher = rt.watch(move |r| {
        let _ = tx.send(r);
    });
    let _watcher = _watcher.unwrap();

    install("echo-strategy", &s.plugin);
    let report = next(&mut rx).await.unwrap();
    assert_eq!(report.loaded, ["s"]);
    let up = Script::new([Err(fail(ErrorKind::Timeout))]);
    let err = rt
        .call(CallSpec::new("svc", "read").idempotent(true), |_| {
            let up = up.clone();
            async move { up.next().await }
        })
        .await
        .unwrap_err();
    assert!(matches!(err.history[0].step, Step::Fail { .. }), "{err:?}");

    std::fs::write(&s.config, "[plugins.s\n").unwrap();
    let err = next(&mut rx).await.unwrap_err();
    assert!(err.to_string().contains("mender.toml:"), "{err}");
    assert_eq!(rt.reload_status().generation, 2);
}

/// The next reload the watcher reports, within a generous bound.
async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ReloadResult>) -> ReloadResult {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no reload within 30 s of the change")
        .unwrap()
}

/// `mender demo --watch`: edit the config, break the plugin, send SIGHUP;
/// the running process reports each reload and keeps calling.
#[cfg(unix)]
#[test]
fn demo_watch_reloads_a_running_process() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mender = env!("CARGO_BIN_EXE_mender");
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("backoff.wasm");
    install("exponential-backoff", &plugin);
    let embedded = Command::new(mender)
        .args(["demo", "--print-config"])
        .output()
        .unwrap();
    let embedded = String::from_utf8(embedded.stdout).unwrap();
    let text = embedded.replace(
        "bundled = \"exponential-backoff\"",
        &format!("path = \"{}\"", plugin.display()),
    );
    assert_ne!(
        text, embedded,
        "the demo config no longer bundles the backoff"
    );
    let config = dir.path().join("mender.toml");
    std::fs::write(&config, &text).unwrap();

    let mut child = Command::new(mender)
        .args(["demo", "--watch", "--every", "20ms", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; output so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    };

    wait_for("generation 1: ");
    std::fs::write(
        &config,
        text.replace("base = \"200ms\"", "base = \"100ms\""),
    )
    .unwrap();
    wait_for("reloaded: generation 2 · new version of backoff");
    install("trap-strategy", &plugin);
    wait_for("backoff: new version refused, the previous one keeps serving");
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("SIGHUP: reloading");
    wait_for("reloaded: generation 4");
    // Still calling after all that.
    wait_for("search#");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A plugin path that becomes a FIFO fails the reload at once (opening it
/// used to wait forever for a writer, holding the reload lock, so no later
/// reload could apply); the old version keeps serving, and a later fix
/// applies.
#[cfg(unix)]
#[tokio::test]
async fn a_fifo_as_plugin_path_fails_the_reload_at_once() {
    let s = setup("exponential-backoff");
    let rt = build(&s);
    std::fs::remove_file(&s.plugin).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&s.plugin)
            .status()
            .unwrap()
            .success()
    );
    let bound = Duration::from_secs(20);
    let _ = tokio::time::timeout(bound, rt.reload())
        .await
        .expect("the reload returns instead of waiting on the FIFO");
    let error = rt.reload_status().error.expect("the reload reports it");
    assert!(error.contains("is not a regular file (a FIFO)"), "{error}");

    std::fs::remove_file(&s.plugin).unwrap();
    install("exponential-backoff", &s.plugin);
    tokio::time::timeout(bound, rt.reload())
        .await
        .expect("the reload lock is free")
        .unwrap();
    assert_eq!(rt.reload_status().error, None);
}
