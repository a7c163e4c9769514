//! `mender demo`: the bundled plugins keep a simulated flaky upstream's
//! callers served, in virtual time, deterministically for a seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mender::{AttemptRecord, CallError, CallSpec, ErrorKind, Reply, Runtime, ServedBy, Step};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use tracing_subscriber::layer::SubscriberExt;

use crate::timeline::{self, PluginLogLayer};
use crate::upstream::{FlakyUpstream, SCRIPT, TOKEN_ROTATES_AT, UpstreamError};

/// The embedded demo configuration (`mender demo --print-config`).
pub(crate) const DEMO_CONFIG: &str = include_str!("demo.toml");
/// The service the demo calls.
const SERVICE: &str = "demo";
const CALLS: u32 = 180;
pub(crate) const CALL_EVERY: Duration = Duration::from_millis(500);
const QUERIES: [&str; 4] = ["open bugs", "flaky tests", "release blockers", "docs"];

#[derive(Default)]
pub(crate) struct Summary {
    calls: u32,
    ok_first: u32,
    ok_after_retry: u32,
    fallbacks: BTreeMap<String, u32>,
    failed: u32,
    attempts: u32,
    retries: u32,
    refreshes: u32,
    rejected: u32,
    waited: Duration,
}

impl Summary {
    fn count_history(&mut self, history: &[AttemptRecord]) {
        self.attempts += history.len() as u32;
        for r in history {
            if r.kind == ErrorKind::Rejected {
                self.rejected += 1;
            }
            match &r.step {
                Step::Retry { delay, .. } => {
                    self.retries += 1;
                    self.waited += *delay;
                }
                Step::RefreshCredentials { .. } => self.refreshes += 1,
                Step::Fallback { .. }
                | Step::Fail { .. }
                | Step::Hedged
                | Step::Cancelled { .. } => {}
            }
        }
    }
}

pub(crate) fn run(seed: u64, config: Option<&Path>, quiet: bool) -> ExitCode {
    let subscriber = tracing_subscriber::registry().with(PluginLogLayer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        // Virtual time: every sleep, timeout and plugin clock read advances
        // instantly and in order, so 90 s of trouble replays in a moment.
        .start_paused(true)
        .build()
        .expect("building the tokio runtime");
    rt.block_on(drive(seed, config, quiet))
}

/// The runtime the demo calls through: `config` (or the embedded demo
/// config), with a credential provider that refreshes the upstream's token.
pub(crate) fn build_runtime(
    seed: u64,
    config: Option<&Path>,
    upstream: &Arc<FlakyUpstream>,
) -> Result<Runtime, mender::BuildError> {
    let builder = match config {
        Some(path) => Runtime::builder().config_file(path),
        None => Runtime::builder().config_str(DEMO_CONFIG, "<embedded demo.toml>"),
    };
    let refresher = upstream.clone();
    builder?
        .seed(seed)
        .credentials(SERVICE, move |_service: String| {
            let up = refresher.clone();
            async move {
                up.agent_token.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .build()
        // For `--admin`'s status page (nothing listens without it).
        .inspect(crate::admin::show_demo_runtime)
}

/// The pipeline the demo's calls go through, as configured: the service's
/// own, or the `default` service's.
fn pipeline_header(config: Option<&Path>) -> String {
    let parsed = match config {
        Some(path) => mender::Config::from_file(path),
        None => mender::Config::parse(DEMO_CONFIG, "<embedded demo.toml>", Path::new(".")),
    };
    // The runtime was built from the same file, so it parses.
    let Ok(parsed) = parsed else {
        return "pipeline: (config unreadable)".to_owned();
    };
    let service = parsed
        .services
        .iter()
        .find(|s| s.name == SERVICE)
        .or_else(|| {
            parsed
                .services
                .iter()
                .find(|s| s.name == mender::config::DEFAULT_SERVICE)
        });
    let Some(service) = service else {
        return format!("pipeline: none (no service `{SERVICE}` or `default` is configured)");
    };
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(" → ")
        }
    };
    format!(
        "pipeline ({}): {}, then fallbacks {}",
        service.name,
        list(&service.strategies),
        list(&service.fallbacks)
    )
}

async fn drive(seed: u64, config: Option<&Path>, quiet: bool) -> ExitCode {
    let upstream = Arc::new(FlakyUpstream::new(seed));
    let runtime = match build_runtime(seed, config, &upstream) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    out!(
        "mender demo (seed {seed}): {CALLS} calls, one every {}ms, to a simulated upstream, in virtual time",
        CALL_EVERY.as_millis()
    );
    let phases: Vec<String> = SCRIPT.iter().map(|(s, p)| format!("{s}s {p:?}")).collect();
    out!(
        "script: {} · token rotates at {}s",
        phases.join(" → "),
        TOKEN_ROTATES_AT.as_secs()
    );
    out!("{}\n", pipeline_header(config));
    timeline::start(quiet);

    let mut rng = SmallRng::seed_from_u64(seed);
    let mut summary = Summary::default();
    let start = tokio::time::Instant::now();
    for i in 0..CALLS {
        tokio::time::sleep_until(start + CALL_EVERY * i).await;
        one_call(&runtime, &upstream, &mut rng, i, &mut summary).await;
    }
    timeline::finish();
    print_summary(&runtime, &summary);
    ExitCode::SUCCESS
}

/// Call number `i`: a search (idempotent) or, now and then, a create.
pub(crate) async fn one_call(
    runtime: &Runtime,
    upstream: &Arc<FlakyUpstream>,
    rng: &mut SmallRng,
    i: u32,
    summary: &mut Summary,
) {
    {
        let create = rng.random_bool(0.15);
        let (spec, label) = if create {
            (
                CallSpec::new(SERVICE, "tools/call:create_issue"),
                format!("create#{}", i + 1),
            )
        } else {
            let q = QUERIES[rng.random_range(0..QUERIES.len())];
            (
                CallSpec::new(SERVICE, "tools/call:search")
                    .idempotent(true)
                    .result_key(q),
                format!("search#{}", i + 1),
            )
        };
        let up = upstream.clone();
        let op = spec.operation().to_owned();
        let result: Result<Reply<String>, CallError<UpstreamError>> = runtime
            .call(spec, |_attempt| {
                let up = up.clone();
                let op = op.clone();
                async move { up.request(&op).await }
            })
            .await;
        summary.calls += 1;
        report(&label, result, summary);
    }
}

fn describe(r: &AttemptRecord) -> String {
    let what = match (r.kind, r.status) {
        (ErrorKind::Auth, Some(s)) => format!("auth {s} \"{}\"", r.message),
        (ErrorKind::Rejected, _) => format!("rejected ({})", r.message),
        (kind, Some(s)) => format!("{kind} {s}"),
        (kind, None) => kind.to_string(),
    };
    let step = match &r.step {
        Step::Retry { by, delay } => format!("retry in {}ms [{by}]", delay.as_millis()),
        Step::RefreshCredentials { by } => format!("refresh credentials [{by}]"),
        Step::Fallback { by } => format!("fallback [{by}]"),
        Step::Fail { .. } => "give up".to_owned(),
        Step::Hedged => "hedge still running".to_owned(),
        Step::Cancelled { answered } => format!("cancelled: attempt {answered} answered"),
    };
    format!("{what} → {step}")
}

fn report(label: &str, result: Result<Reply<String>, CallError<UpstreamError>>, s: &mut Summary) {
    let (history, outcome) = match result {
        Ok(reply) if reply.history.is_empty() && !reply.is_fallback() => {
            s.ok_first += 1;
            s.attempts += 1;
            timeline::ok();
            return;
        }
        Ok(reply) => {
            let outcome = match &reply.served_by {
                ServedBy::Upstream => {
                    s.ok_after_retry += 1;
                    s.attempts += 1;
                    "ok".to_owned()
                }
                ServedBy::Fallback { plugin, age } => {
                    *s.fallbacks.entry(plugin.clone()).or_default() += 1;
                    match age {
                        Some(age) => {
                            format!("served by {plugin} (answer {:.1}s old)", age.as_secs_f64())
                        }
                        None => format!("served by {plugin}"),
                    }
                }
            };
            (reply.history, outcome)
        }
        Err(e) => {
            s.failed += 1;
            (e.history, format!("FAILED: {}", e.reason))
        }
    };
    s.count_history(&history);
    let steps: Vec<String> = history.iter().map(describe).collect();
    let text = format!("{} ⇒ {outcome}", steps.join(" · "));
    // Calls that went the same way (ignoring the answer's age) fold together.
    let shape = text.split(" (answer").next().unwrap_or(&text).to_owned();
    timeline::call(&format!("{label:<10} {text}"), &shape);
}

pub(crate) fn print_summary(runtime: &Runtime, s: &Summary) {
    let fallbacks: u32 = s.fallbacks.values().sum();
    let by_plugin: Vec<String> = s
        .fallbacks
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    let mut transitions = BTreeMap::new();
    for ((_, _, name), n) in runtime.plugin_metrics().counters() {
        if let Some(to) = name.strip_prefix("transitions_to_") {
            *transitions.entry(to.replace('_', "-")).or_insert(0) += n;
        }
    }
    let transitions: Vec<String> = transitions
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    out!("\nsummary");
    out!(
        "  calls                {:>4}  ok first try {}, ok after retry {}, fallback {}, failed {}",
        s.calls,
        s.ok_first,
        s.ok_after_retry,
        fallbacks,
        s.failed
    );
    out!(
        "  attempts             {:>4}  retries {}, credential refreshes {}, refused by admission {}",
        s.attempts,
        s.retries,
        s.refreshes,
        s.rejected
    );
    out!(
        "  fallbacks served     {:>4}  {}",
        fallbacks,
        if by_plugin.is_empty() {
            "-".into()
        } else {
            by_plugin.join(", ")
        }
    );
    out!(
        "  circuit transitions       {}",
        if transitions.is_empty() {
            "-".into()
        } else {
            transitions.join(", ")
        }
    );
    out!(
        "  time waiting in retry delays {:.1}s",
        s.waited.as_secs_f64()
    );
    out!(
        "  answered              {:.1}% of calls (upstream or fallback)",
        100.0 * f64::from(s.calls - s.failed) / f64::from(s.calls.max(1))
    );
}
