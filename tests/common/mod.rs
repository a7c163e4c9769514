//! Helpers shared by the integration tests: guest fixtures built by
//! host/build.rs, runtimes from inline TOML, and a scripted upstream; and
//! (in `tools`) the workspace root and the skip-or-require rule.

#![allow(dead_code)]

pub mod http_upstream;
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

/// One call of service `search` against a dead upstream; whether it
/// reached the upstream (an open breaker refuses it first). The fleet
/// tests count what a shared breaker lets through with it.
pub async fn call_down(rt: &Runtime, reached: &std::sync::atomic::AtomicU64) -> bool {
    use std::sync::atomic::Ordering;
    let before = reached.load(Ordering::SeqCst);
    let _ = rt
        .call(
            mender::CallSpec::new("search", "q").idempotent(true),
            move |_| async move {
                reached.fetch_add(1, Ordering::SeqCst);
                Err::<String, _>(Failure::new(mender::ErrorKind::Connect, "down"))
            },
        )
        .await;
    reached.load(Ordering::SeqCst) > before
}

/// Runs the retry budget's operation (`calls`/`retries` counters, 50 %,
/// floor 1) through `shared` and through a local store, step by step,
/// and requires the same answers: a shared backend's script decides as
/// the local one does.
pub fn retry_budget_agrees(
    shared: &dyn mender::state::StateStore,
    calls: mender::state::ScopedKey,
    retries: mender::state::ScopedKey,
) {
    use mender::state::{MemoryState, RetryAsk, StateStore as _};
    let ask = |new_calls| RetryAsk {
        calls: calls.clone(),
        retries: retries.clone(),
        new_calls,
        percent: 50,
        floor: 1,
        ttl_ms: 60_000,
    };
    let local = MemoryState::default();
    for (new_calls, taken) in [(0, true), (0, false), (4, true), (0, false), (2, true)] {
        let answer = shared.take_retry(ask(new_calls), 0);
        assert_eq!(answer, local.take_retry(ask(new_calls), 0));
        assert_eq!(answer.taken, taken, "{answer:?}");
    }
}
