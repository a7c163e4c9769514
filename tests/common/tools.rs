//! What the suites that need tools beyond Rust share: where the workspace
//! is, and the one skip-or-require rule.
//!
//! The MCP, polyglot, Redis and browser suites run only where their tools are
//! installed (`./test` installs them all). Where one is missing a test
//! prints `skipped: …` and passes, unless its `MENDER_REQUIRE_*` variable
//! is `1` (what `./test` sets): then it fails. No `mender` items here, so
//! a test crate of any package can include this file with `#[path]`.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A suite that needs tools beyond Rust.
#[derive(Clone, Copy, Debug)]
pub enum Suite {
    /// Real MCP servers and the Python `mcp` client (`tests/mcp/install`).
    Mcp,
    /// The Python, JavaScript and C plugins (`plugins/build-polyglot --install`).
    Polyglot,
    /// A `redis-server` on the PATH.
    Redis,
    /// A headless `chromium` on the PATH (the status page's browser test).
    Browser,
}

impl Suite {
    /// The variable that turns a skip into a failure when it is `1`.
    pub fn require_var(self) -> &'static str {
        match self {
            Suite::Mcp => "MENDER_REQUIRE_MCP",
            Suite::Polyglot => "MENDER_REQUIRE_POLYGLOT",
            Suite::Redis => "MENDER_REQUIRE_REDIS",
            Suite::Browser => "MENDER_REQUIRE_BROWSER",
        }
    }

    /// Whether a missing tool fails the test: only the exact value `1`
    /// requires (`0`, empty or unset let the test skip).
    pub fn required(self) -> bool {
        std::env::var(self.require_var()).is_ok_and(|v| v == "1")
    }
}

/// Call when a tool `suite` needs is missing (`missing` says which and how
/// to install it): panics when the suite is required, else prints
/// `skipped: {missing}` and returns, and the caller returns early.
///
/// The line goes straight to the process's stderr: libtest captures the
/// print macros of passing tests, and a skip must never be silent.
pub fn require_or_skip(suite: Suite, missing: &str) {
    if suite.required() {
        panic!("{}=1, but {missing}", suite.require_var());
    }
    let _ = writeln!(std::io::stderr(), "skipped: {missing}");
}

/// The workspace root (the directory whose Cargo.toml has `[workspace]`),
/// found from the test's own package, wherever in the tree that package is.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|l| l.trim() == "[workspace]"))
        })
        .expect("no Cargo.toml with [workspace] above CARGO_MANIFEST_DIR")
        .to_owned()
}

/// Runs one test of this very test binary in a child process, with `env`
/// added: to check what a test does when its tools are missing or
/// required, without touching this process's environment.
pub fn run_this_test(name: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args([name, "--exact", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .expect("running the test binary")
}

/// Checks the skip-or-require rule on `test` (a test of this binary) with
/// `missing` (variables that hide the suite's tools): with the suite's
/// variable at `0` it passes and says `skipped:` on stderr, past the
/// harness's capture; at `1` it fails, naming the variable.
pub fn assert_skips_unless_required(suite: Suite, test: &str, missing: &[(&str, &str)]) {
    let var = suite.require_var();
    let with = |value| {
        let env: Vec<(&str, &str)> = missing.iter().copied().chain([(var, value)]).collect();
        let out = run_this_test(test, &env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    };

    let (out, text) = with("0");
    assert!(out.status.success(), "{var}=0 must skip, not fail:\n{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .any(|l| l.starts_with("skipped: ")),
        "{var}=0: no `skipped:` line on stderr:\n{text}"
    );
    assert!(text.contains("1 passed"), "{test} did not run:\n{text}");

    let (out, text) = with("1");
    assert!(!out.status.success(), "{var}=1 must fail:\n{text}");
    assert!(text.contains(&format!("{var}=1")), "{text}");
}
