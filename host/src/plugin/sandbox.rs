//! The sandbox every plugin runs in: the wasmtime engine (and why each
//! setting is what it is), its epoch ticker, and the linker that decides
//! what a plugin may import. Built once per runtime, conformance run or
//! inspection, the same way for each.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::bindings::{v0_1, v0_2};
use super::host_api::HostState;

/// An engine with its epoch ticker running, and the linker plugins are
/// instantiated with.
pub(crate) struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
}

impl Sandbox {
    /// Builds the engine, starts its ticker and links the host interfaces.
    pub(crate) fn new() -> anyhow::Result<Sandbox> {
        let engine = new_engine()?;
        start_epoch_ticker(&engine);
        let linker = new_linker(&engine)?;
        Ok(Sandbox { engine, linker })
    }
}

/// How often the epoch advances. Plugin deadlines are counted in epochs, so
/// this is the resolution of every plugin deadline: a runaway plugin is
/// stopped at most one tick after its deadline. 10 ms is Spin's choice too:
/// fine enough for a 100 ms hook deadline, coarse enough that the ticker
/// thread costs nothing measurable.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Environment variable that overrides the epoch tick in milliseconds, as an
/// escape hatch for hosts that need finer deadlines.
const EPOCH_TICK_ENV: &str = "MENDER_EPOCH_TICK_MS";

/// The tick in force: [`EPOCH_TICK`] unless `MENDER_EPOCH_TICK_MS` says
/// otherwise. Read once per process: every hook call converts its deadline
/// with it, and reading the environment (a global lock and an allocation)
/// on each call cost more than the conversion; one value also keeps every
/// deadline in step with the ticker thread.
pub(crate) fn epoch_tick() -> Duration {
    static TICK: OnceLock<Duration> = OnceLock::new();
    *TICK.get_or_init(|| {
        std::env::var(EPOCH_TICK_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(EPOCH_TICK)
    })
}

/// Builds the engine.
pub(crate) fn new_engine() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    // Components only: every plugin is a component of one of our worlds.
    config.wasm_component_model(true);
    // Epoch interruption rather than fuel: an epoch check is a load and a
    // compare per loop back-edge, while fuel adds ~10-15% to every call we
    // measured. Deadlines do not need fuel's determinism.
    config.epoch_interruption(true);
    // Plugins are small and called often: spend compile time once for
    // faster decisions. Cranelift's "speed" is its default optimising level.
    config.cranelift_opt_level(OptLevel::Speed);
    // A trapped plugin should say where: names in backtraces cost nothing
    // until a trap happens.
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    // Deep recursion in a plugin must trap, not take the host thread's
    // stack with it. 512 KiB is far more than a decision needs and well
    // inside tokio's 2 MiB worker stacks.
    config.max_wasm_stack(512 * 1024);
    Ok(Engine::new(&config)?)
}

/// Advances the engine's epoch every tick, from a thread that holds only a
/// weak reference: when the last `Runtime` clone is dropped, the engine is
/// dropped and the thread exits at its next tick.
pub(crate) fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let tick = epoch_tick();
    std::thread::Builder::new()
        .name("mender-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// How many epoch ticks cover `deadline`: rounded up, plus one, because
/// the current tick may be almost over when the deadline is set. A plugin
/// is never stopped before its deadline, and at most one tick after.
/// Saturates at [`MAX_TICKS`]: wasmtime adds the ticks to the current
/// epoch without checking for overflow.
pub(crate) fn ticks_for(deadline: Duration) -> u64 {
    let tick = epoch_tick().as_nanos().max(1);
    u64::try_from(deadline.as_nanos().div_ceil(tick))
        .unwrap_or(MAX_TICKS)
        .saturating_add(1)
        .min(MAX_TICKS)
}

/// The most ticks a deadline may be: centuries at any tick, and far from
/// overflowing when added to the engine's epoch.
const MAX_TICKS: u64 = 1 << 62;

/// The linker every plugin is instantiated with: the host interfaces, and
/// WASI p2 against a context that grants nothing unless configured (see
/// `capability.rs`). A component importing anything else is refused at
/// load.
pub(crate) fn new_linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // Every contract version side by side: a component links against the
    // one it was built for (0.1 and 0.2 are distinct, as 0.x minors are).
    v0_1::strategy::StrategyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    v0_2::strategy::StrategyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_saturate() {
        assert_eq!(ticks_for(Duration::MAX), MAX_TICKS);
        assert!(ticks_for(Duration::ZERO) >= 1);
        assert!(ticks_for(Duration::from_secs(1)) >= 100);
    }
}
