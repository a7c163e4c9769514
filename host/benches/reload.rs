//! Hot reload: how long from a plugin file written to its new version
//! serving (compiled cold, from the artefact cache, unchanged, and through
//! the file watcher), and what a storm of reloads costs the calls running
//! meanwhile.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use mender::{CallSpec, ErrorKind, Failure, Runtime};

use common::guest;

/// Two different components that fit the same table, to alternate between.
const VERSIONS: [&str; 2] = ["exponential-backoff", "echo-strategy"];

struct Bench {
    _dir: tempfile::TempDir,
    plugin: PathBuf,
    cache: PathBuf,
    config: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("s.wasm");
        std::fs::copy(guest(VERSIONS[0]), &plugin).unwrap();
        let config = dir.path().join("mender.toml");
        std::fs::write(
            &config,
            format!(
                "[guardrails]\nmax-delay = \"0ms\"\n[plugins.s]\npath = \"{}\"\n[services.default]\nstrategies = [\"s\"]\n",
                plugin.display()
            ),
        )
        .unwrap();
        let cache = dir.path().join("cache");
        Bench {
            _dir: dir,
            plugin,
            cache,
            config,
        }
    }

    fn runtime(&self, cached: bool) -> Runtime {
        let b = Runtime::builder().config_file(&self.config).unwrap();
        let b = if cached {
            b.cache_dir(&self.cache)
        } else {
            b.no_cache()
        };
        b.build().unwrap()
    }

    /// Writes version `i` of the plugin as a build would (beside, then
    /// renamed into place).
    fn install(&self, i: usize) {
        let tmp = self.plugin.with_extension("tmp");
        std::fs::copy(guest(VERSIONS[i % 2]), &tmp).unwrap();
        std::fs::rename(&tmp, &self.plugin).unwrap();
    }
}

fn write_to_serving(c: &mut Criterion) {
    let mut g = c.benchmark_group("reload");
    g.sample_size(20);
    for (name, cached) in [
        ("write_to_serving_cold", false),
        ("write_to_serving_cached", true),
    ] {
        let b = Bench::new();
        let rt = b.runtime(cached);
        // Both versions compiled once, so "cached" measures cache loads.
        for i in 0..2 {
            b.install(i + 1);
            rt.reload_blocking(None).unwrap();
        }
        let mut i = 0;
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    i += 1;
                    let start = Instant::now();
                    b.install(i);
                    let report = rt.reload_blocking(None).unwrap();
                    total += start.elapsed();
                    assert_eq!(report.loaded.len(), 1, "{report:?}");
                }
                total
            })
        });
    }
    let b = Bench::new();
    let rt = b.runtime(true);
    g.bench_function("unchanged", |bench| {
        bench.iter(|| black_box(rt.reload_blocking(None).unwrap()))
    });

    // Through the watcher: the debounce (mender::DEBOUNCE) dominates.
    g.sample_size(10);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let b = Bench::new();
    let rt = b.runtime(true);
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = tokio.block_on(async { rt.watch(move |r| drop(tx.send(r))).unwrap() });
    let mut i = 0;
    g.bench_function("write_to_serving_watched_cached", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                i += 1;
                let start = Instant::now();
                b.install(i);
                rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// A call whose first attempt fails, so the strategy decides.
async fn failing_call(rt: &Runtime) {
    let mut first = true;
    let _ = rt
        .call(CallSpec::new("svc", "read").idempotent(true), move |_| {
            let fail = std::mem::replace(&mut first, false);
            async move {
                if fail {
                    Err(Failure::new(ErrorKind::Connect, "refused"))
                } else {
                    Ok::<_, Failure>(())
                }
            }
        })
        .await;
}

fn calls_during_reload_storm(c: &mut Criterion) {
    let mut g = c.benchmark_group("reload_storm");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let b = Arc::new(Bench::new());
    let rt = b.runtime(true);
    for i in 0..2 {
        b.install(i + 1);
        rt.reload_blocking(None).unwrap();
    }
    g.bench_function("failing_call_no_reloads", |bench| {
        bench.iter(|| tokio.block_on(failing_call(&rt)))
    });
    // Another thread reloads back to back (alternating versions, from the
    // cache) for as long as the calls are measured.
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let (b, rt, stop) = (b.clone(), rt.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                b.install(n);
                rt.reload_blocking(None).unwrap();
            }
            n
        })
    };
    g.bench_function("failing_call_reload_storm", |bench| {
        bench.iter(|| tokio.block_on(failing_call(&rt)))
    });
    stop.store(true, Ordering::Relaxed);
    let reloads = storm.join().unwrap();
    eprintln!("reload storm: {reloads} reloads during the measurement");
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = write_to_serving, calls_during_reload_storm
}
criterion_main!(benches);
