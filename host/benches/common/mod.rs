//! What the benches share: runtimes from inline TOML, the failing and the
//! succeeding upstream, and the floor (a raw wasmtime call of the no-op
//! fixture `tests/guests/noop-strategy`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use mender::{CallSpec, ErrorKind, Failure, Runtime};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel, Store};

/// Short runs for development: `MENDER_BENCH_QUICK=1` (set by `bench/run
/// --quick`). The numbers are then only good for seeing that it works.
pub fn criterion() -> Criterion {
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

/// A component built by host/build.rs (bundled plugins and fixtures).
pub fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("MENDER_GUEST_DIR")).join(format!("{name}.wasm"))
}

/// The bundled pipeline the issue names: breaker → backoff → fallback.
/// The breaker never trips (the threshold is out of reach), so every
/// failed call takes the same path: breaker `admit` (its lease ended with
/// the previous failure), backoff `on-error` (retry), the guardrail refuses
/// the retry (`max-attempts = 1`, so nothing sleeps), static fallback
/// `serve`. Three Wasm calls, the host's guardrails, redaction, event and
/// history: one error-path decision.
pub const PIPELINE3: &str = r#"
[guardrails]
max-attempts = 1

[plugins.breaker]
bundled = "circuit-breaker"
config = { failure-threshold = 4294967295 }

[plugins.backoff]
bundled = "exponential-backoff"

[plugins.fallback]
bundled = "static-fallback"
config = { default = "cached answer" }

[services.pipeline3]
strategies = ["breaker", "backoff"]
fallbacks = ["fallback"]

[services.breaker]
strategies = ["breaker"]

[services.backoff]
strategies = ["backoff"]

[services.fallback]
fallbacks = ["fallback"]

[services.bare]
"#;

/// A runtime from TOML text, seeded.
pub fn runtime(toml: &str) -> Runtime {
    Runtime::builder()
        .config_str(toml, "bench.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .seed(1)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The failure every error-path bench's upstream answers.
pub fn refused() -> Failure {
    Failure::new(ErrorKind::Connect, "connection refused")
}

/// One call to `service` whose only attempt fails with [`refused`]; the
/// answer is whatever the pipeline made of it (a fallback or an error).
pub async fn failing_call(rt: &Runtime, service: &'static str) -> bool {
    let reply = rt
        .call(
            CallSpec::new(service, "tools/call:search").idempotent(true),
            |_| async { Err::<String, _>(refused()) },
        )
        .await;
    reply.is_ok()
}

/// One call to `service` whose attempt succeeds at once.
pub async fn succeeding_call(rt: &Runtime, service: &'static str) -> bool {
    let reply = rt
        .call(
            CallSpec::new(service, "tools/call:search").idempotent(true),
            |_| async { Ok::<String, Failure>(String::new()) },
        )
        .await;
    reply.is_ok()
}

/// The time `iters` awaited calls of `call` take on `tokio`, one after
/// another (what `iter_custom` wants from a bench of async calls).
pub fn time_calls<Fut: std::future::Future<Output = bool>>(
    tokio: &tokio::runtime::Runtime,
    iters: u64,
    mut call: impl FnMut() -> Fut,
) -> Duration {
    tokio.block_on(async {
        let start = std::time::Instant::now();
        for _ in 0..iters {
            std::hint::black_box(call().await);
        }
        start.elapsed()
    })
}

/// A single-threaded tokio runtime, as a bench drives one call at a time.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The engine settings of `host/src/engine.rs` (private to the crate):
/// components, epoch interruption, Cranelift at `Speed`, backtrace details,
/// a 512 KiB Wasm stack. Keep in step with it.
pub fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    config.max_wasm_stack(512 * 1024);
    Engine::new(&config).expect("engine")
}

/// Bindings of the strategy world of contract 0.1, for raw typed calls.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "strategy-plugin",
    });
}

/// The same for contract 0.2 (the guest SDK's).
pub mod bindings_v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "strategy-plugin",
    });
}

pub use bindings::mender::plugin::types as wit;
pub use bindings_v0_2::mender::plugin::types as wit_v0_2;

/// A strategy instance of either contract.
pub enum RawBindings {
    V0_1(bindings::StrategyPlugin),
    V0_2(bindings_v0_2::StrategyPlugin),
}

/// An instance of a strategy component, called without mender: the
/// imports trap (the no-op fixtures and the bundled plugins' `init` call
/// none of them).
pub struct RawStrategy {
    pub store: Store<()>,
    pub bindings: RawBindings,
}

impl RawStrategy {
    /// Instantiates `component` (of whichever contract it exports) and
    /// runs `init` with `config`.
    pub fn new(engine: &Engine, component: &Component, config: &str) -> RawStrategy {
        let mut linker = Linker::new(engine);
        linker
            .define_unknown_imports_as_traps(component)
            .expect("linking");
        let mut store = Store::new(engine, ());
        // Epoch interruption is on, as in mender: give the store a deadline
        // that never comes (no ticker runs here).
        store.set_epoch_deadline(u64::MAX / 2);
        let v0_2 = component
            .component_type()
            .exports(engine)
            .any(|(name, _)| name == "mender:plugin/strategy@0.2.0");
        let bindings = if v0_2 {
            let b = bindings_v0_2::StrategyPlugin::instantiate(&mut store, component, &linker)
                .expect("instantiating");
            b.mender_plugin_strategy()
                .call_init(&mut store, config)
                .expect("calling init")
                .expect("init accepted the config");
            RawBindings::V0_2(b)
        } else {
            let b = bindings::StrategyPlugin::instantiate(&mut store, component, &linker)
                .expect("instantiating");
            b.mender_plugin_strategy()
                .call_init(&mut store, config)
                .expect("calling init")
                .expect("init accepted the config");
            RawBindings::V0_1(b)
        };
        RawStrategy { store, bindings }
    }

    /// One `on-error` call of a 0.1 strategy.
    pub fn on_error(&mut self, event: &wit::ErrorEvent, recent: &wit::Outcomes) -> wit::Decision {
        let RawBindings::V0_1(b) = &self.bindings else {
            panic!("on_error takes 0.1 arguments: use on_error_v0_2");
        };
        b.mender_plugin_strategy()
            .call_on_error(&mut self.store, event, recent)
            .expect("on-error")
    }

    /// One `admit` call of a 0.1 strategy.
    pub fn admit(&mut self, call: &wit::CallInfo, recent: &wit::Outcomes) -> wit::Admission {
        let RawBindings::V0_1(b) = &self.bindings else {
            panic!("admit takes 0.1 arguments: use admit_v0_2");
        };
        b.mender_plugin_strategy()
            .call_admit(&mut self.store, call, recent)
            .expect("admit")
    }

    /// One `on-error` call of a 0.2 strategy.
    pub fn on_error_v0_2(
        &mut self,
        event: wit_v0_2::ErrorEvent,
        recent: wit_v0_2::Outcomes,
    ) -> wit_v0_2::Decision {
        let RawBindings::V0_2(b) = &self.bindings else {
            panic!("on_error_v0_2 takes 0.2 arguments: use on_error");
        };
        b.mender_plugin_strategy()
            .call_on_error(&mut self.store, event, recent)
            .expect("on-error")
    }

    /// One `admit` call of a 0.2 strategy.
    pub fn admit_v0_2(
        &mut self,
        call: wit_v0_2::CallInfo,
        recent: wit_v0_2::Outcomes,
    ) -> wit_v0_2::Admission {
        let RawBindings::V0_2(b) = &self.bindings else {
            panic!("admit_v0_2 takes 0.2 arguments: use admit");
        };
        b.mender_plugin_strategy()
            .call_admit(&mut self.store, call, recent)
            .expect("admit")
    }
}

/// The event the host builds for [`failing_call`]'s failure, as the floor
/// passes it.
pub fn event() -> wit::ErrorEvent {
    wit::ErrorEvent {
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
    }
}

/// Outcomes as the host hands them with one new failure.
pub fn outcomes() -> wit::Outcomes {
    wit::Outcomes {
        successes: 0,
        failures: 1,
        failures_by_kind: vec![(wit::ErrorKind::Connect, 1)],
        consecutive_failures: 1,
        success_latency_total: 0,
        leased_attempts: 0,
    }
}

/// The call info the host builds before an attempt.
pub fn call_info() -> wit::CallInfo {
    wit::CallInfo {
        service: "pipeline3".into(),
        operation: "tools/call:search".into(),
        attempt: 1,
        elapsed: 0,
        deadline_left: Some(120_000),
        idempotent: true,
        tags: Vec::new(),
    }
}
