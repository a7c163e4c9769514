//! Bad plugins and bad configs are refused at load, with messages that say
//! which plugin, where, and what is wrong.

mod common;

use mender::Runtime;

fn build_err(toml: &str) -> String {
    let toml = toml.replace("{guests}", env!("MENDER_GUEST_DIR"));
    match Runtime::builder()
        .config_str(&toml, "bad.toml")
        .and_then(|b| b.build())
    {
        Ok(_) => panic!("expected an error for:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_file_names_plugin_and_path() {
    let e = build_err("[plugins.gone]\npath = \"/nonexistent/x.wasm\"\n");
    assert!(e.contains("plugin `gone`"), "{e}");
    assert!(e.contains("bad.toml:1"), "{e}");
    assert!(e.contains("/nonexistent/x.wasm"), "{e}");
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn non_component_is_refused_clearly() {
    let dir = std::env::temp_dir().join(format!("mender-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.wasm");
    std::fs::write(&text, "this is not wasm").unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let e = build_err(&format!("[plugins.p]\npath = \"{}\"\n", text.display()));
    assert!(e.contains("not a WebAssembly file"), "{e}");
    let e = build_err(&format!("[plugins.p]\npath = \"{}\"\n", core.display()));
    assert!(e.contains("core Wasm module, not a component"), "{e}");
}

#[test]
fn unknown_bundled_plugin_lists_the_known_ones() {
    let e = build_err("[plugins.p]\nbundled = \"exponential-backof\"\n");
    assert!(e.contains("no bundled plugin"), "{e}");
    assert!(e.contains("exponential-backoff"), "{e}");
}

#[test]
fn wrong_world_in_a_pipeline_is_refused() {
    let e = build_err(
        "[plugins.cached]\nbundled = \"cached-fallback\"\n[services.api]\nstrategies = [\"cached\"]\n",
    );
    assert!(e.contains("is a fallback-plugin"), "{e}");
    assert!(e.contains("service `api`"), "{e}");
    // Where the service names it: line 4, column 15.
    assert!(e.contains("(bad.toml:4:15)"), "{e}");
}

#[test]
fn bad_plugin_config_is_refused_at_init() {
    let e = build_err(
        "[plugins.backoff]\nbundled = \"exponential-backoff\"\nconfig = { bsae = \"1s\" }\n",
    );
    assert!(e.contains("plugin `backoff`"), "{e}");
    assert!(e.contains("bsae"), "{e}");
}

#[test]
fn plugin_trapping_in_init_is_refused() {
    let e = build_err(
        "[plugins.t]\npath = \"{guests}/trap-strategy.wasm\"\nconfig = { trap-in = \"init\" }\n",
    );
    assert!(e.contains("plugin `t`"), "{e}");
    assert!(e.contains("in init"), "{e}");
}

#[test]
fn config_errors_are_located() {
    let e = build_err("[services.api]\nstrategies = [\"nope\"]\n");
    assert!(e.starts_with("bad.toml:2:15: "), "{e}");
    assert!(e.contains("unknown plugin `nope`"), "{e}");
}

/// A plugin needs no particular language or SDK: `fixed-retry` is written
/// by hand in the component-model text format (tests/guests-wat), and
/// loads and decides like any other strategy.
#[tokio::test]
async fn a_strategy_written_by_hand_in_wat_decides() {
    use std::time::Duration;

    use common::{Script, fail};
    use mender::{CallSpec, ErrorKind, Reply, Step};

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/guests-wat/fixed-retry.wasm");
    let rt = common::runtime(&format!(
        "[guardrails]\nmax-attempts = 4\n[plugins.wat]\npath = \"{}\"\n[services.api]\nstrategies = [\"wat\"]\n",
        path.display()
    ));
    // Connect and timeout: a fixed 50 ms; rate-limited: the upstream's
    // retry-after.
    let script = Script::new([
        Err(fail(ErrorKind::Connect)),
        Err(fail(ErrorKind::Timeout)),
        Err(fail(ErrorKind::RateLimited).with_retry_after(Duration::from_millis(120))),
    ]);
    let reply: Reply<String> = rt
        .call(CallSpec::new("api", "get").idempotent(true), |_| {
            script.next()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.value, "fresh");
    let delays: Vec<_> = reply
        .history
        .iter()
        .map(|r| match &r.step {
            Step::Retry { by, delay } => {
                assert_eq!(by, "wat");
                delay.as_millis()
            }
            other => panic!("expected a retry, got {other:?}"),
        })
        .collect();
    assert_eq!(delays, [50, 50, 120]);

    // Anything else: it passes, and with no other strategy the call fails.
    let script = Script::failing(fail(ErrorKind::Auth), 1);
    let err = rt
        .call(CallSpec::new("api", "get").idempotent(true), |_| {
            script.next()
        })
        .await
        .map(|r: Reply<String>| r.value)
        .expect_err("auth is not retried");
    assert!(
        err.reason.contains("no strategy chose to retry"),
        "{}",
        err.reason
    );

    // Its init refuses a config, saying so.
    let e = build_err(&format!(
        "[plugins.wat]\npath = \"{}\"\nconfig = {{ delay = \"1s\" }}\n",
        path.display()
    ));
    assert!(
        e.contains("rejected its config: fixed-retry takes no config"),
        "{e}"
    );
}

/// A plugin path must name a regular file: a FIFO is refused at once
/// (opening it used to wait forever for a writer) and so is a device.
#[cfg(unix)]
#[test]
fn special_files_as_plugin_paths_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p.wasm");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let e = build_err(&format!("[plugins.p]\npath = \"{}\"\n", fifo.display()));
    assert!(e.contains("plugin `p`"), "{e}");
    assert!(e.contains("is not a regular file (a FIFO)"), "{e}");
    let e = build_err("[plugins.z]\npath = \"/dev/zero\"\n");
    assert!(
        e.contains("is not a regular file (a character device)"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
