//! `mender demo --watch --config FILE`: the demo in real time, looping its
//! script, while the configuration and plugin files are watched. Edit the
//! config or rebuild a plugin and the next calls run on the new version,
//! without a restart; `kill -HUP` forces a reload.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mender::{ReloadReport, ReloadResult, Runtime};
use rand::{SeedableRng, rngs::SmallRng};
use tracing_subscriber::layer::SubscriberExt;

use crate::demo::{self, Summary};
use crate::timeline::{self, PluginLogLayer};
use crate::upstream::FlakyUpstream;

/// How watch mode runs.
pub(crate) struct WatchOptions<'a> {
    pub(crate) seed: u64,
    pub(crate) config: &'a Path,
    /// Time between calls.
    pub(crate) every: Duration,
    /// Stop after this many calls (run until interrupted when `None`).
    pub(crate) calls: Option<u32>,
}

pub(crate) fn run(opts: WatchOptions<'_>) -> ExitCode {
    let subscriber = tracing_subscriber::registry().with(PluginLogLayer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        // Real time, and signals (SIGHUP) need the IO driver.
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    rt.block_on(drive(opts))
}

async fn drive(opts: WatchOptions<'_>) -> ExitCode {
    let upstream = Arc::new(FlakyUpstream::new(opts.seed));
    let runtime = match demo::build_runtime(opts.seed, Some(opts.config), &upstream) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let watcher = runtime.watch(print_reload);
    let _watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(runtime.clone()));

    out!(
        "mender demo --watch: calling the simulated upstream every {}ms in real time, its script on a loop",
        opts.every.as_millis()
    );
    out!(
        "watching {} and its plugin files (process {}: `kill -HUP` reloads too)",
        opts.config.display(),
        std::process::id()
    );
    print_versions(&runtime);
    timeline::start(false);

    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut summary = Summary::default();
    let mut cycle_started = tokio::time::Instant::now();
    let mut i = 0u32;
    while opts.calls.is_none_or(|n| i < n) {
        // A pause between calls, not a schedule: after a slow call the
        // demo carries on at its pace instead of catching up in a burst.
        if i > 0 {
            tokio::time::sleep(opts.every).await;
        }
        if cycle_started.elapsed() >= FlakyUpstream::script_length() {
            upstream.restart();
            cycle_started = tokio::time::Instant::now();
            timeline::line("— the upstream's script starts again —");
        }
        demo::one_call(&runtime, &upstream, &mut rng, i, &mut summary).await;
        i += 1;
    }
    timeline::finish();
    demo::print_summary(&runtime, &summary);
    ExitCode::SUCCESS
}

fn print_versions(runtime: &Runtime) {
    let plugins: Vec<String> = runtime
        .plugins()
        .iter()
        .map(|p| format!("{} v{}", p.name, p.version))
        .collect();
    out!(
        "generation {}: {}",
        runtime.reload_status().generation,
        plugins.join(", ")
    );
}

fn print_reload(result: ReloadResult) {
    match result {
        Ok(report) => timeline::line(&describe(&report)),
        Err(e) => timeline::line(&format!(
            "✗ reload refused, the previous configuration keeps serving: {e}"
        )),
    }
}

fn describe(r: &ReloadReport) -> String {
    let mut text = format!("↻ reloaded: generation {}", r.generation);
    if !r.loaded.is_empty() {
        text += &format!(" · new version of {}", r.loaded.join(", "));
    }
    if !r.removed.is_empty() {
        text += &format!(" · removed {}", r.removed.join(", "));
    }
    if r.loaded.is_empty() && r.removed.is_empty() && r.refused.is_empty() {
        text += " · configuration applied, no plugin changed";
    }
    for (name, why) in &r.refused {
        text += &format!(
            "\n          ✗ {name}: new version refused, the previous one keeps serving: {why}"
        );
    }
    text
}

#[cfg(unix)]
async fn reload_on_sighup(runtime: Runtime) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        timeline::line("SIGHUP: reloading");
        print_reload(runtime.reload().await.map_err(Arc::new));
    }
}
