//! Helpers shared by the integration tests: guest fixtures built by
//! host/build.rs, runtimes from inline TOML, and a scripted upstream; and
//! (in `tools`) the workspace root and the skip-or-require rule.

#![allow(dead_code)]

pub mod tools;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mender::{Failure, Runtime};

/// A component built by host/build.rs (plugins and test fixtures).
pub fn guest(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("MENDER_GUEST_DIR")).join(format!("{name}.wasm"));
    assert!(path.exists(), "fixture {} was not built", path.display());
    path
}

/// A backoff that wants three retries per call, under a retry budget of
/// five retries a day and no more (`percent = 0`): the budget, not the
/// plugin, decides how many retries happen.
pub const RETRY_BUDGET: &str = r#"
[guardrails]
max-attempts = 4
retry-budget = { percent = 0, min-retries = 5, window = "24h" }
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "1ms", jitter = "none", max-attempts = 4 }
[services.default]
strategies = ["backoff"]
"#;

/// A runtime from TOML text, seeded for replayable jitter. `{guests}` in
/// the text is replaced by the fixture directory.
pub fn runtime(toml: &str) -> Runtime {
    let toml = toml.replace("{guests}", env!("MENDER_GUEST_DIR"));
    Runtime::builder()
        .config_str(&toml, "test.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .seed(1)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An upstream that answers from a script: each attempt pops the next
/// result; once the script is empty it succeeds.
#[derive(Clone, Default)]
pub struct Script {
    steps: Arc<Mutex<VecDeque<Result<String, Failure>>>>,
    pub calls: Arc<Mutex<u32>>,
}

impl Script {
    pub fn new(steps: impl IntoIterator<Item = Result<String, Failure>>) -> Self {
        Script {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            calls: Arc::default(),
        }
    }

    pub fn failing(failure: Failure, times: usize) -> Self {
        Script::new(std::iter::repeat_n(Err(failure), times))
    }

    pub async fn next(&self) -> Result<String, Failure> {
        *self.calls.lock().unwrap() += 1;
        self.steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok("fresh".to_owned()))
    }

    pub fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }
}

/// Shorthand for a failure of a kind.
pub fn fail(kind: mender::ErrorKind) -> Failure {
    Failure::new(kind, format!("simulated {kind}"))
}
