//! The host interfaces a plugin may import (log, clock, random, state,
//! metrics), implemented on the store's data, with per-hook-call budgets so
//! one plugin call cannot flood logs or the state store.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::InstanceLimiter;
use crate::host::HostShared;
use crate::host::state::{
    BatchOp, BatchResult, MAX_BATCH_OPS, QuotaExceeded, ScopedKey, StateQuota, StateScope,
};
use crate::plugin::bindings::v0_1::strategy::mender::plugin::{
    clock, log, metrics, random, state, types,
};

/// Log lines one hook call may write; the rest are dropped (and counted),
/// so a plugin in a loop cannot flood the agent's logs.
const LOG_LINES_PER_CALL: u32 = 32;
/// Longest log line kept, in bytes; longer lines are cut.
const LOG_LINE_BYTES: usize = 2048;
/// State writes one hook call may make; a breaker or limiter needs a handful.
const STATE_WRITES_PER_CALL: u32 = 256;
/// Longest state key, in bytes.
const STATE_KEY_BYTES: usize = 256;
/// Largest state value, in bytes: state is for counters and small records,
/// not for caching payloads.
const STATE_VALUE_BYTES: usize = 64 * 1024;

/// The host clock as a plugin call sees it: the host's time when the call
/// began plus real time since. Read through this, the clock is right on
/// any thread (a WASI plugin's calls run off the runtime thread, where
/// tokio's virtual clock cannot be read), and a virtual clock stays
/// virtual: it does not advance while a plugin runs anyway.
#[derive(Debug)]
pub(crate) struct CallClock {
    began: Mutex<(u64, std::time::Instant)>,
}

impl CallClock {
    pub(crate) fn new() -> Self {
        CallClock {
            began: Mutex::new((0, std::time::Instant::now())),
        }
    }

    /// Marks the start of a call at host time `now_ms`, which is `at` on
    /// the monotonic clock.
    pub(crate) fn begin(&self, now_ms: u64, at: std::time::Instant) {
        *self.began.lock().unwrap_or_else(|p| p.into_inner()) = (now_ms, at);
    }

    /// Host milliseconds now.
    pub(crate) fn now_ms(&self) -> u64 {
        let (ms, at) = *self.began.lock().unwrap_or_else(|p| p.into_inner());
        ms.saturating_add(crate::host::clock::duration_ms(at.elapsed()))
    }
}

/// The data of one plugin instance's store.
pub(crate) struct HostState {
    /// The plugin's name in the config.
    pub(crate) plugin: Arc<str>,
    /// The service of the hook call in progress (scopes `state`).
    pub(crate) service: Arc<str>,
    pub(crate) shared: Arc<HostShared>,
    /// Memory and table caps for this instance, summed over its
    /// memories and tables.
    pub(crate) limits: InstanceLimiter,
    /// This instance's view of the host clock, shared with its WASI clocks.
    pub(crate) clock: Arc<CallClock>,
    /// What this plugin may keep in state per service (`state-kib`,
    /// `state-keys`).
    pub(crate) state_quota: StateQuota,
    /// What the hook call in progress is about, for 0.2's `current`.
    pub(crate) current: super::current::Current,
    /// The deny-by-default WASI context (see `capability.rs`).
    wasi: WasiCtx,
    table: ResourceTable,
    log_lines_left: u32,
    logs_dropped: u32,
    state_writes_left: u32,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        shared: Arc<HostShared>,
        limits: InstanceLimiter,
        clock: Arc<CallClock>,
        wasi: WasiCtx,
    ) -> Self {
        HostState {
            plugin,
            service: Arc::from(""),
            shared,
            limits,
            clock,
            state_quota: StateQuota::default(),
            current: Default::default(),
            wasi,
            table: ResourceTable::new(),
            log_lines_left: LOG_LINES_PER_CALL,
            logs_dropped: 0,
            state_writes_left: STATE_WRITES_PER_CALL,
        }
    }

    /// Prepares for a hook call on behalf of `service`, starting at host
    /// time `now_ms` (`at`): scopes state, sets the plugin's clock and
    /// resets the per-call budgets.
    pub(crate) fn begin_call(&mut self, service: &Arc<str>, now_ms: u64, at: std::time::Instant) {
        if !Arc::ptr_eq(&self.service, service) {
            self.service = service.clone();
        }
        self.clock.begin(now_ms, at);
        self.log_lines_left = LOG_LINES_PER_CALL;
        self.logs_dropped = 0;
        self.state_writes_left = STATE_WRITES_PER_CALL;
    }

    /// Reports what the budgets cut during the call just made.
    pub(crate) fn end_call(&mut self) {
        if self.logs_dropped > 0 {
            tracing::warn!(
                target: "mender::plugin",
                plugin = %self.plugin,
                service = %self.service,
                dropped = self.logs_dropped,
                "plugin exceeded {LOG_LINES_PER_CALL} log lines in one call; the rest were dropped"
            );
        }
    }

    fn key(&self, key: String) -> wasmtime::Result<ScopedKey> {
        if key.len() > STATE_KEY_BYTES {
            wasmtime::bail!(
                "state key of {} bytes exceeds the limit of {STATE_KEY_BYTES}",
                key.len()
            );
        }
        Ok(ScopedKey {
            plugin: self.plugin.clone(),
            service: self.service.clone(),
            key,
        })
    }

    /// 0.2's `state.batch`, checked as its single operations are: each
    /// key's length, each write's value size and the per-call write budget,
    /// and at most [`MAX_BATCH_OPS`] operations.
    pub(crate) fn state_batch(&mut self, ops: Vec<BatchOp>) -> wasmtime::Result<Vec<BatchResult>> {
        if ops.len() > MAX_BATCH_OPS {
            wasmtime::bail!(
                "state batch of {} operations exceeds the limit of {MAX_BATCH_OPS}",
                ops.len()
            );
        }
        for op in &ops {
            if op.key().len() > STATE_KEY_BYTES {
                wasmtime::bail!(
                    "state key of {} bytes exceeds the limit of {STATE_KEY_BYTES}",
                    op.key().len()
                );
            }
            if let Some(value) = op.written() {
                self.write_budget(value.len())?;
            }
        }
        let scope = StateScope {
            plugin: self.plugin.clone(),
            service: self.service.clone(),
        };
        let now = self.clock.now_ms();
        self.shared
            .state
            .batch_within(&scope, &ops, now, self.state_quota)
            .map_err(over_quota)
    }

    fn write_budget(&mut self, value_len: usize) -> wasmtime::Result<()> {
        if value_len > STATE_VALUE_BYTES {
            wasmtime::bail!(
                "state value of {value_len} bytes exceeds the limit of {STATE_VALUE_BYTES}"
            );
        }
        if self.state_writes_left == 0 {
            wasmtime::bail!("more than {STATE_WRITES_PER_CALL} state writes in one hook call");
        }
        self.state_writes_left -= 1;
        Ok(())
    }
}

/// A log line cut to [`LOG_LINE_BYTES`] (on a character boundary), marked
/// with `…` when cut, with its control characters escaped so one plugin
/// line is one log line (see [`crate::escape`]).
fn clip_log_line(mut message: String) -> String {
    if message.len() > LOG_LINE_BYTES {
        message.truncate(message.floor_char_boundary(LOG_LINE_BYTES));
        message.push('…');
    }
    crate::escape::escape_owned(message)
}

impl types::Host for HostState {}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        // A line the filter drops costs neither the budget nor a copy.
        if !log_enabled(level) {
            return Ok(());
        }
        if self.log_lines_left == 0 {
            self.logs_dropped += 1;
            return Ok(());
        }
        self.log_lines_left -= 1;
        let message = clip_log_line(message);
        let (plugin, service) = (&*self.plugin, &*self.service);
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(target: "mender::plugin", plugin, service, "{message}")
            };
        }
        match level {
            log::Level::Trace => emit!(trace),
            log::Level::Debug => emit!(debug),
            log::Level::Info => emit!(info),
            log::Level::Warn => emit!(warn),
            log::Level::Error => emit!(error),
        }
        Ok(())
    }
}

/// Whether the log filter lets a plugin's line at `level` through (0.2's
/// `log.enabled`, and the check before `write` does any work).
pub(crate) fn log_enabled(level: log::Level) -> bool {
    use tracing::Level as L;
    match level {
        log::Level::Trace => tracing::enabled!(target: "mender::plugin", L::TRACE),
        log::Level::Debug => tracing::enabled!(target: "mender::plugin", L::DEBUG),
        log::Level::Info => tracing::enabled!(target: "mender::plugin", L::INFO),
        log::Level::Warn => tracing::enabled!(target: "mender::plugin", L::WARN),
        log::Level::Error => tracing::enabled!(target: "mender::plugin", L::ERROR),
    }
}

impl clock::Host for HostState {
    fn now(&mut self) -> u64 {
        self.clock.now_ms()
    }
}

impl random::Host for HostState {
    fn next_u64(&mut self) -> u64 {
        self.shared.random.next_u64()
    }
}

/// A refused write, as the trap that faults the plugin: the message names
/// the plugin, the service and the quota.
fn over_quota(e: QuotaExceeded) -> wasmtime::Error {
    wasmtime::Error::msg(e.to_string())
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let key = self.key(key)?;
        Ok(self.shared.state.get(&key, self.clock.now_ms()))
    }

    fn set(&mut self, key: String, value: String, ttl: Option<u64>) -> wasmtime::Result<()> {
        self.write_budget(value.len())?;
        let key = self.key(key)?;
        let now = self.clock.now_ms();
        self.shared
            .state
            .set_within(key, value, ttl, now, self.state_quota)
            .map_err(over_quota)
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.write_budget(0)?;
        let key = self.key(key)?;
        self.shared.state.delete(&key);
        Ok(())
    }

    fn increment(&mut self, key: String, delta: i64, ttl: Option<u64>) -> wasmtime::Result<i64> {
        self.write_budget(0)?;
        let key = self.key(key)?;
        let now = self.clock.now_ms();
        self.shared
            .state
            .increment_within(key, delta, ttl, now, self.state_quota)
            .map_err(over_quota)
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        value: String,
        ttl: Option<u64>,
    ) -> wasmtime::Result<bool> {
        self.write_budget(value.len())?;
        let key = self.key(key)?;
        let now = self.clock.now_ms();
        self.shared
            .state
            .compare_and_swap_within(key, expected.as_deref(), value, ttl, now, self.state_quota)
            .map_err(over_quota)
    }
}

impl metrics::Host for HostState {
    fn counter_add(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        self.shared
            .metrics
            .counter_add(&self.plugin, &self.service, &name, value);
        Ok(())
    }

    fn gauge_set(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        self.shared
            .metrics
            .gauge_set(&self.plugin, &self.service, &name, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::state::MemoryState;

    fn host_state() -> HostState {
        let shared = Arc::new(HostShared::live(
            Arc::new(MemoryState::default()),
            Some(1),
            false,
        ));
        let mut s = HostState::new(
            "p".into(),
            shared,
            InstanceLimiter::new(usize::MAX),
            Arc::new(CallClock::new()),
            WasiCtx::builder().build(),
        );
        s.begin_call(&Arc::from("svc"), 0, std::time::Instant::now());
        s
    }

    #[test]
    fn state_keys_values_and_writes_are_bounded() {
        let mut s = host_state();
        let long_key = "k".repeat(STATE_KEY_BYTES + 1);
        assert!(state::Host::get(&mut s, long_key).is_err());
        let big = "v".repeat(STATE_VALUE_BYTES + 1);
        assert!(state::Host::set(&mut s, "k".into(), big, None).is_err());
        for i in 0..STATE_WRITES_PER_CALL {
            state::Host::increment(&mut s, format!("n{i}"), 1, None).unwrap();
        }
        let err = state::Host::set(&mut s, "one-more".into(), "x".into(), None).unwrap_err();
        assert!(
            err.to_string().contains("state writes in one hook call"),
            "{err}"
        );
        // The budget is per hook call.
        s.begin_call(&Arc::from("svc"), 0, std::time::Instant::now());
        assert!(state::Host::set(&mut s, "next-call".into(), "x".into(), None).is_ok());
    }

    #[test]
    fn a_batch_is_bounded_as_its_operations_are() {
        let mut s = host_state();
        let inc = |i: usize| BatchOp::Increment {
            key: format!("n{i}"),
            delta: 1,
            ttl_ms: None,
        };
        let too_many: Vec<_> = (0..=MAX_BATCH_OPS).map(inc).collect();
        let err = s.state_batch(too_many).unwrap_err();
        assert!(
            err.to_string()
                .contains("state batch of 65 operations exceeds the limit of 64"),
            "{err}"
        );
        let long_key = vec![BatchOp::Get {
            key: "k".repeat(STATE_KEY_BYTES + 1),
        }];
        assert!(s.state_batch(long_key).is_err());
        let big = vec![BatchOp::Set {
            key: "k".into(),
            value: "v".repeat(STATE_VALUE_BYTES + 1),
            ttl_ms: None,
        }];
        assert!(s.state_batch(big).is_err());
        // Each write in a batch spends the per-call write budget; reads do not.
        let reads: Vec<_> = (0..MAX_BATCH_OPS)
            .map(|i| BatchOp::Get {
                key: format!("n{i}"),
            })
            .collect();
        for _ in 0..10 {
            s.state_batch(reads.clone()).unwrap();
        }
        for _ in 0..STATE_WRITES_PER_CALL as usize / MAX_BATCH_OPS {
            let writes = (0..MAX_BATCH_OPS).map(inc).collect();
            assert_eq!(s.state_batch(writes).unwrap().len(), MAX_BATCH_OPS);
        }
        let err = s.state_batch(vec![inc(0)]).unwrap_err();
        assert!(
            err.to_string().contains("state writes in one hook call"),
            "{err}"
        );
    }

    #[test]
    fn writes_past_the_state_quota_fault_with_plugin_service_and_quota() {
        let mut s = host_state();
        s.state_quota = StateQuota {
            max_bytes: 1 << 20,
            max_keys: 8,
        };
        for i in 0..8 {
            state::Host::set(&mut s, format!("k{i}"), "v".into(), None).unwrap();
        }
        let err = state::Host::increment(&mut s, "k8".into(), 1, None).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("plugin `p`"), "{err}");
        assert!(err.contains("service `svc`"), "{err}");
        assert!(err.contains("1048576 bytes, 8 keys"), "{err}");
    }

    #[test]
    fn log_lines_are_counted_and_clipped() {
        let mut s = host_state();
        use tracing_subscriber::layer::SubscriberExt;
        let info =
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
        tracing::subscriber::with_default(info, || {
            for _ in 0..LOG_LINES_PER_CALL + 5 {
                log::Host::write(&mut s, log::Level::Info, "line".into()).unwrap();
            }
            assert_eq!(s.logs_dropped, 5);
            // A line the filter drops is not counted against the budget.
            s.begin_call(&Arc::from("svc"), 0, std::time::Instant::now());
            for _ in 0..LOG_LINES_PER_CALL + 5 {
                log::Host::write(&mut s, log::Level::Debug, "quiet".into()).unwrap();
            }
            assert_eq!((s.logs_dropped, s.log_lines_left), (0, LOG_LINES_PER_CALL));
            assert!(log_enabled(log::Level::Warn) && !log_enabled(log::Level::Debug));
        });
        let clipped = clip_log_line("é".repeat(LOG_LINE_BYTES));
        assert!(clipped.len() <= LOG_LINE_BYTES + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_log_line("short".into()), "short");
    }

    #[test]
    fn log_lines_cannot_forge_lines_or_drive_the_terminal() {
        let line = clip_log_line("ok\n2026-12-02T09:00:00Z  INFO forged\x1b[2J".into());
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line:?}");
        assert_eq!(line, "ok\\n2026-12-02T09:00:00Z  INFO forged\\u{1b}[2J");
    }
}
