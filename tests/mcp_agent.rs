//! The rmcp example agent (`host/mcp/examples/mcp_agent.rs`) against a real
//! MCP server (`mcp-server-time`, installed by `tests/mcp/install`): its
//! tool calls go through `mender::Runtime`, and a server that dies on
//! start is started again by the retried attempt.
//!
//! Without the MCP test tools each test prints a `skipped: …` line and
//! passes, unless `MENDER_REQUIRE_MCP=1` (set by `./test`): then it fails.

#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use tools::{Suite, require_or_skip, workspace};

/// `mcp-server-time` from the test venv, or `None` (after saying so) when
/// it is not installed and not required.
fn time_server() -> Option<PathBuf> {
    let tools = std::env::var_os("MENDER_MCP_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/mcp-tools"));
    let bin = tools.join("venv/bin/mcp-server-time");
    if bin.exists() {
        return Some(bin);
    }
    require_or_skip(
        Suite::Mcp,
        &format!(
            "{} is missing (run tests/mcp/install or ./test)",
            bin.display()
        ),
    );
    None
}

/// The example binary. `cargo test --workspace` builds examples with the
/// tests; a `cargo test --test mcp_agent` alone does not, so then it is
/// built here, with the workspace's feature set (`-p mender-mcp` alone
/// would resolve features differently and rebuild mender and wasmtime).
fn agent() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_mender"))
        .parent()
        .unwrap()
        .join("examples/mcp_agent");
    BUILT.call_once(|| {
        if bin.exists() {
            return;
        }
        let release = bin.components().any(|c| c.as_os_str() == "release");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--example", "mcp_agent"])
            .args(release.then_some("--release"))
            .status()
            .unwrap();
        assert!(status.success(), "building the mcp_agent example failed");
    });
    bin
}

/// A server command that exits at once (no handshake) on its first
/// `crashes` starts, then runs the real server; each start is logged.
fn crashes_first(dir: &Path, server: &Path, crashes: u32) -> PathBuf {
    let script = dir.join("server.sh");
    let log = dir.join("starts");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho start >> '{l}'\n\
             if [ \"$(wc -l < '{l}')\" -le {crashes} ]; then echo 'boom' >&2; exit 3; fi\n\
             exec '{s}'\n",
            l = log.display(),
            s = server.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn run(args: &[&str], server: &Path) -> std::process::Output {
    Command::new(agent())
        .args(args)
        .arg("--")
        .arg(server)
        .output()
        .unwrap()
}

#[test]
fn a_tool_call_through_the_runtime_answers() {
    let Some(server) = time_server() else { return };
    let out = run(
        &[
            "--tool",
            "get_current_time",
            "--args",
            r#"{"timezone":"UTC"}"#,
        ],
        &server,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"timezone\": \"UTC\""), "{stdout}");
    assert!(!stdout.contains("failed attempt"), "{stdout}");
}

fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_server_that_dies_on_start_is_started_again_by_the_retry() {
    let Some(server) = time_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = crashes_first(dir.path(), &server, 1);
    let out = run(
        &[
            "--tool",
            "get_current_time",
            "--args",
            r#"{"timezone":"UTC"}"#,
            "--retry",
        ],
        &script,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("failed attempt 1: connect"), "{stdout}");
    assert!(stdout.contains("\"timezone\": \"UTC\""), "{stdout}");
    assert_eq!(starts(dir.path()), 2);
}

#[test]
fn only_a_call_known_to_be_safe_is_repeated() {
    let Some(server) = time_server() else { return };
    let args = [
        "--tool",
        "get_current_time",
        "--args",
        r#"{"timezone":"UTC"}"#,
    ];
    // The server never starts, so the agent cannot learn the tool is
    // read-only: the call is made once and fails.
    let dir = tempfile::tempdir().unwrap();
    let script = crashes_first(dir.path(), &server, 100);
    let out = run(&args, &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed attempt 1: connect"), "{stdout}");
    assert!(!stdout.contains("failed attempt 2"), "{stdout}");
    // Listing the tools was one start, the call another.
    assert_eq!(starts(dir.path()), 2);

    // Vouched for, it is repeated up to the backoff's limit (4 attempts).
    let dir = tempfile::tempdir().unwrap();
    let script = crashes_first(dir.path(), &server, 100);
    let out = run(&[&args[..], &["--retry"]].concat(), &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed attempt 4: connect"), "{stdout}");
    assert_eq!(starts(dir.path()), 4);
}

/// Without the MCP tools a test skips, saying so past the harness's
/// capture, unless MENDER_REQUIRE_MCP=1, which fails it.
#[test]
fn without_the_tools_a_test_skips_unless_required() {
    tools::assert_skips_unless_required(
        Suite::Mcp,
        "a_tool_call_through_the_runtime_answers",
        &[("MENDER_MCP_TOOLS", "/nonexistent")],
    );
}
