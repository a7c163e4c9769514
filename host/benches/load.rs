//! Getting a plugin ready: compile, load a precompiled artefact (what a
//! compiled-artefact cache does), instantiate and `init`, the whole
//! `RuntimeBuilder::build`; and memory (RSS) per loaded plugin and per warm
//! instance, written as JSON to `$MENDER_BENCH_MEMORY` (by `bench/run`).

mod common;

use std::hint::black_box;

use criterion::{Criterion, SamplingMode, criterion_group};
use wasmtime::component::Component;

use common::{RawStrategy, engine, guest};

/// The plugin every load bench loads: the bundled backoff strategy.
const PLUGIN: &str = "exponential-backoff";

fn load(c: &mut Criterion) {
    let engine = engine();
    let bytes = std::fs::read(guest(PLUGIN)).expect("the bundled plugin");
    let mut g = c.benchmark_group("load");
    // Milliseconds per iteration: the same count in every sample, few
    // samples, rather than criterion's growing counts.
    g.sample_size(20).sampling_mode(SamplingMode::Flat);
    // What `mender` does per plugin at startup (and per reload): Cranelift
    // on every function (in parallel on every core).
    g.bench_function("compile", |b| {
        b.iter(|| black_box(Component::new(&engine, &bytes).expect("compiling")))
    });
    // The cache slot: wasmtime's own deserialisation of a precompiled
    // artefact, the floor of any compiled-artefact cache (mender's cache
    // is on another branch; this measures what it would call).
    let component = Component::new(&engine, &bytes).expect("compiling");
    let artefact = component.serialize().expect("serializing");
    g.bench_function("cache_load", |b| {
        // SAFETY: the artefact was serialized just above by this engine.
        b.iter(|| {
            black_box(unsafe { Component::deserialize(&engine, &artefact) }.expect("loading"))
        })
    });
    // A new warm instance: what the pool does when all are busy or one
    // was discarded after a fault.
    g.bench_function("instantiate_init", |b| {
        b.iter(|| black_box(RawStrategy::new(&engine, &component, "{}")))
    });
    // The public API end to end: engine, compile, link, first instance
    // and `init`, pipelines.
    let toml = format!("[plugins.backoff]\nbundled = \"{PLUGIN}\"\n");
    g.bench_function("runtime_build", |b| {
        b.iter(|| black_box(common::runtime(&toml)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = load
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Plugins (and instances) measured at once: enough that allocator noise
/// averages out.
const N: u64 = 32;

/// RSS per loaded plugin (a runtime with 1 + N copies of the plugin against
/// one with 1) and per warm instance (N more instances of one compiled
/// plugin, each after `init`).
fn memory() {
    let Some(out) = std::env::var_os("MENDER_BENCH_MEMORY") else {
        eprintln!("MENDER_BENCH_MEMORY not set: skipping the memory measurement");
        return;
    };
    let tokio = common::current_thread();
    let copies = |n: u64| {
        (0..n)
            .map(|i| format!("[plugins.p{i}]\nbundled = \"{PLUGIN}\"\n"))
            .collect::<String>()
    };
    let one = tokio.block_on(async { common::runtime(&copies(1)) });
    let before = rss();
    let many = tokio.block_on(async { common::runtime(&copies(1 + N)) });
    let per_plugin = rss().saturating_sub(before) / N;
    drop((one, many));

    let engine = engine();
    let bytes = std::fs::read(guest(PLUGIN)).expect("the bundled plugin");
    let component = Component::new(&engine, &bytes).expect("compiling");
    let first = RawStrategy::new(&engine, &component, "{}");
    let before = rss();
    let warm: Vec<RawStrategy> = (0..N)
        .map(|_| RawStrategy::new(&engine, &component, "{}"))
        .collect();
    let per_instance = rss().saturating_sub(before) / N;
    drop((first, warm));

    let json = format!(
        "{{\"plugin\": \"{PLUGIN}\", \"component_bytes\": {}, \"count\": {N}, \
         \"rss_per_loaded_plugin_bytes\": {per_plugin}, \"rss_per_warm_instance_bytes\": {per_instance}}}\n",
        bytes.len()
    );
    std::fs::write(&out, &json).expect("writing the memory figures");
    eprintln!("memory: {json}");
}

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
