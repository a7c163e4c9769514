//! `mender mcp-proxy` end to end, with third-party MCP software on both
//! sides: the Python `mcp` client drives the real binary, in front of
//! real servers (server-everything on node, mcp-server-time,
//! mcp-server-fetch). The scenarios are pytest files in `tests/mcp/`; each
//! test here runs one of them with `MENDER_BIN` set to the binary cargo
//! built.
//!
//! `tests/mcp/install` puts the tools in `target/mcp-tools/`. Without them
//! each test prints a `skipped: …` line (to the terminal, past the test
//! harness's capture) and passes, unless `MENDER_REQUIRE_MCP=1` (set by
//! `./test`): then it fails.

#[path = "common/tools.rs"]
mod tools;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use tools::{Suite, require_or_skip, workspace};

/// The scenarios kill, stop and time servers: run one file at a time, so
/// two suites never share the 2 cores while timeouts are being measured.
static SERIAL: Mutex<()> = Mutex::new(());

/// The venv's Python, or `None` (after saying so) when the tools are not
/// installed and not required.
fn python() -> Option<PathBuf> {
    let tools = std::env::var_os("MENDER_MCP_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/mcp-tools"));
    let python = tools.join("venv/bin/python");
    let everything = tools.join("npm/node_modules/@modelcontextprotocol/server-everything");
    if python.exists() && everything.exists() {
        return Some(python);
    }
    require_or_skip(
        Suite::Mcp,
        &format!(
            "the MCP test tools are not installed in {} (run tests/mcp/install or ./test)",
            tools.display()
        ),
    );
    None
}

/// Runs `tests/mcp/<file>` under pytest against the built binary.
fn pytest(file: &str) {
    let Some(python) = python() else {
        return;
    };
    // A panic in another test poisons the lock; the files are independent.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = workspace();
    let out = Command::new(&python)
        .args(["-m", "pytest", "-x", "-q", "--tb=short"])
        .args(["-p", "no:cacheprovider"])
        .arg(root.join("tests/mcp").join(file))
        .env("MENDER_BIN", env!("CARGO_BIN_EXE_mender"))
        .current_dir(&root)
        .output()
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest tests/mcp/{file} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    // Exit 0 also covers "no tests ran" (5 is not 0, but be explicit).
    assert!(stdout.contains(" passed"), "{stdout}{stderr}");
}

#[test]
fn listings_pass_through() {
    pytest("test_listing.py");
}

#[test]
fn crashed_upstream_is_restarted() {
    pytest("test_crash.py");
}

#[test]
fn hung_upstream_times_out_and_trips_the_breaker() {
    pytest("test_hang.py");
}

#[test]
fn http_failures_are_classified_and_retried() {
    pytest("test_http_faults.py");
}

#[test]
fn upstreams_that_cannot_start() {
    pytest("test_bad_command.py");
}

#[test]
fn sampling_roots_logs_and_cancellation_are_forwarded() {
    pytest("test_forwarding.py");
}

#[test]
fn a_clients_traceparent_reaches_an_http_upstream() {
    pytest("test_tracing.py");
}

/// Without the MCP tools a test skips, saying so past the harness's
/// capture, unless MENDER_REQUIRE_MCP=1, which fails it.
#[test]
fn without_the_tools_a_test_skips_unless_required() {
    tools::assert_skips_unless_required(
        Suite::Mcp,
        "listings_pass_through",
        &[("MENDER_MCP_TOOLS", "/nonexistent")],
    );
}

#[test]
fn upstreams_start_once_with_the_clients_capabilities() {
    pytest("test_session_start.py");
}

#[test]
fn secrets_never_reach_the_client() {
    pytest("test_secrets.py");
}

#[test]
fn bad_client_messages_are_answered() {
    pytest("test_wire.py");
}

#[test]
fn unknown_names_are_answered_by_the_upstream() {
    pytest("test_unknown_names.py");
}

#[test]
fn progress_is_monotonic_across_retries() {
    pytest("test_progress.py");
}

#[test]
fn tasks_of_2025_11_25_pass_through_as_they_would_directly() {
    pytest("test_tasks.py");
}

#[test]
fn a_dead_primary_fails_over_to_its_backup_and_back() {
    pytest("test_failover.py");
}

#[test]
fn a_strategy_routes_calls_off_a_hung_primary_and_back() {
    pytest("test_routing.py");
}

#[test]
fn replicas_share_calls_and_a_dead_or_hung_one_costs_one_attempt() {
    pytest("test_replicas.py");
}

#[test]
fn tool_names_prefix_allow_deny_and_collisions() {
    pytest("test_tool_names.py");
}

#[test]
fn status_shows_failed_calls_and_hung_servers() {
    pytest("test_status_ux.py");
}

#[test]
fn conformance_verdicts_match_direct() {
    pytest("test_conformance.py");
}

#[test]
fn conformance_server_suite_through_the_http_front_matches_direct() {
    pytest("test_conformance_http.py");
}

#[test]
fn both_protocol_eras_on_both_sides() {
    pytest("test_eras.py");
}

#[test]
fn remote_servers_over_streamable_http_and_mender_call() {
    pytest("test_remote.py");
}

#[test]
fn many_clients_over_http_with_tokens_origins_and_limits() {
    pytest("test_http_front.py");
}

#[test]
fn per_client_servers_each_session_its_own_process_stopped_when_it_ends() {
    pytest("test_per_client.py");
}

#[test]
fn oauth_for_remote_servers_client_credentials_login_refresh_and_step_up() {
    pytest("test_oauth.py");
}

#[test]
fn conformance_suite_client_auth_scenarios() {
    pytest("test_conformance_auth.py");
}

#[test]
fn typescript_sdk_clients_both_eras_through_the_http_front() {
    pytest("test_ts_client.py");
}

#[test]
fn jwt_bearer_tokens_validated_against_a_jwks() {
    pytest("test_http_jwt.py");
}
