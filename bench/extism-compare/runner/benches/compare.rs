//! The peers, measured by `bench/run` in the same run as `host/benches`:
//!
//! * `extism/*`: the backoff strategy as an Extism plugin
//!   (`../guest`, path in `$EXTISM_BACKOFF_WASM`): one decision (the host
//!   encodes the event as JSON, calls, decodes the decision), compile,
//!   instantiate.
//! * `floor_no_async/*`: mender's floor (the no-op fixture, path in
//!   `$MENDER_NOOP_WASM`) on wasmtime 48 built without its `async`
//!   feature, which the host has because wasmtime-wasi's `p2` enables it.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use extism::{Function, Plugin, PluginBuilder, UserData, Val, ValType};
use serde::{Deserialize, Serialize};

fn criterion() -> Criterion {
    let quick = std::env::var_os("MENDER_BENCH_QUICK").is_some_and(|v| v != "0");
    let c = Criterion::default().configure_from_args();
    if quick {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20)
    } else {
        c.warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5))
    }
}

fn path_from(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run this through bench/run"))
}

/// The WIT `error-event`, as the Extism host sends it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ErrorEvent<'a> {
    service: &'a str,
    operation: &'a str,
    kind: &'a str,
    message: &'a str,
    status: Option<i32>,
    retry_after: Option<u64>,
    attempt: u32,
    elapsed: u64,
    deadline_left: Option<u64>,
    idempotent: bool,
    tags: Vec<(String, String)>,
}

/// The WIT `decision`, as the plugin answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "decision", content = "value")]
#[allow(dead_code)]
enum Decision {
    Pass,
    Retry(u64),
    Fail(String),
}

/// `random.next-u64` for the Extism plugin: splitmix64, as the guest
/// would get from mender's host.
fn random_function() -> Function {
    static STATE: AtomicU64 = AtomicU64::new(1);
    Function::new(
        "next_u64",
        [],
        [ValType::I64],
        UserData::new(()),
        |_plugin, _args, out, _data| {
            let mut z = STATE
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out[0] = Val::I64((z ^ (z >> 31)) as i64);
            Ok(())
        },
    )
}

fn builder(wasm: &[u8]) -> PluginBuilder<'_> {
    PluginBuilder::new(extism::Manifest::new([extism::Wasm::data(wasm.to_vec())]))
        .with_wasi(false)
        .with_functions([random_function()])
        // Like mender, compile every time: no on-disk cache between runs.
        .with_cache_disabled()
}

fn extism_backoff(c: &mut Criterion) {
    let wasm = std::fs::read(path_from("EXTISM_BACKOFF_WASM")).expect("the Extism guest");
    let compiled = builder(&wasm)
        .compile()
        .expect("compiling the Extism plugin");
    let mut plugin = Plugin::new_from_compiled(&compiled).expect("instantiating");
    let decide = |plugin: &mut Plugin| {
        let event = ErrorEvent {
            service: "pipeline3",
            operation: "tools/call:search",
            kind: "connect",
            message: "connection refused",
            status: None,
            retry_after: None,
            attempt: 1,
            elapsed: 0,
            deadline_left: Some(120_000),
            idempotent: true,
            tags: Vec::new(),
        };
        let input = serde_json::to_vec(&event).expect("encoding");
        let output: &[u8] = plugin.call("on_error", input).expect("on_error");
        serde_json::from_slice::<Decision>(output).expect("decoding")
    };
    let first = decide(&mut plugin);
    assert!(matches!(first, Decision::Retry(_)), "{first:?}");
    let mut g = c.benchmark_group("extism");
    g.bench_function("backoff_on_error", |b| {
        b.iter(|| black_box(decide(&mut plugin)))
    });
    g.sample_size(20);
    g.bench_function("compile", |b| {
        b.iter(|| black_box(builder(&wasm).compile().expect("compiling")))
    });
    g.bench_function("instantiate", |b| {
        b.iter(|| black_box(Plugin::new_from_compiled(&compiled).expect("instantiating")))
    });
    g.finish();
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit/since_v0.1.0",
        world: "strategy-plugin",
    });
}

use bindings::mender::plugin::types as wit;

/// host/benches' floor, on a wasmtime without `async` (engine settings of
/// host/src/engine.rs, as in host/benches/common).
fn floor_no_async(c: &mut Criterion) {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, OptLevel, Store};

    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    config.max_wasm_stack(512 * 1024);
    let engine = Engine::new(&config).expect("engine");
    let bytes = std::fs::read(path_from("MENDER_NOOP_WASM")).expect("the noop fixture");
    let component = Component::new(&engine, bytes).expect("compiling");
    let mut linker = Linker::new(&engine);
    linker
        .define_unknown_imports_as_traps(&component)
        .expect("linking");
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    let noop = bindings::StrategyPlugin::instantiate(&mut store, &component, &linker)
        .expect("instantiating");
    let strategy = noop.mender_plugin_strategy();
    strategy
        .call_init(&mut store, "{}")
        .expect("init")
        .expect("config accepted");
    let event = wit::ErrorEvent {
        service: "pipeline3".into(),
        operation: "tools/call:search".into(),
        kind: wit::ErrorKind::Connect,
        message: "connection refused".into(),
        status: None,
        retry_after: None,
        attempt: 1,
        elapsed: 0,
        deadline_left: Some(120_000),
        idempotent: true,
        tags: Vec::new(),
    };
    let recent = wit::Outcomes {
        successes: 0,
        failures: 1,
        failures_by_kind: vec![(wit::ErrorKind::Connect, 1)],
        consecutive_failures: 1,
        success_latency_total: 0,
        leased_attempts: 0,
    };
    let call = wit::CallInfo {
        service: "pipeline3".into(),
        operation: "tools/call:search".into(),
        attempt: 1,
        elapsed: 0,
        deadline_left: Some(120_000),
        idempotent: true,
        tags: Vec::new(),
    };
    let mut g = c.benchmark_group("floor_no_async");
    g.bench_function("on_error_noop", |b| {
        b.iter(|| {
            black_box(
                strategy
                    .call_on_error(&mut store, black_box(&event), black_box(&recent))
                    .expect("on-error"),
            )
        })
    });
    g.bench_function("admit_noop", |b| {
        b.iter(|| {
            black_box(
                strategy
                    .call_admit(&mut store, black_box(&call), black_box(&recent))
                    .expect("admit"),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = extism_backoff, floor_no_async
}
criterion_main!(benches);
