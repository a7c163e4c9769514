//! The host's own services, shared by every plugin instance and every
//! call: the clock, seeded random numbers, plugin-defined metrics,
//! recorded results for cached fallbacks, and the state stores. Plain
//! Rust: nothing here knows about Wasm.

pub(crate) mod clock;
pub(crate) mod metrics;
pub(crate) mod random;
pub(crate) mod results;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use clock::{duration_ms, millis_since};
use metrics::PluginMetrics;
use random::RandomSource;
use state::{MemoryState, StateStore};

/// What every instance of every plugin shares with the host.
pub(crate) struct HostShared {
    /// Where `state` lives.
    pub(crate) state: Arc<dyn StateStore>,
    /// The seeded random source.
    pub(crate) random: RandomSource,
    /// Zero of the host clock.
    pub(crate) epoch: Instant,
    /// Plugin-defined metrics.
    pub(crate) metrics: PluginMetrics,
    /// Real time at `epoch`, for WASI's wall clock.
    pub(crate) wall_at_epoch: std::time::Duration,
    /// Host time at `epoch`: 0, or Unix time in ms when state is shared
    /// between processes, so times plugins store (`open:<since>`) mean the
    /// same in every process (see `state::redis`).
    pub(crate) origin_ms: u64,
}

impl HostShared {
    pub(crate) fn now_ms(&self) -> u64 {
        self.origin_ms.saturating_add(millis_since(self.epoch))
    }

    /// The host time of `at`, a reading of the same (tokio) clock taken
    /// a moment ago: what `now_ms` would have said then, without reading
    /// the clock again.
    pub(crate) fn ms_at(&self, at: Instant) -> u64 {
        self.origin_ms
            .saturating_add(duration_ms(at.saturating_duration_since(self.epoch)))
    }
}

impl HostShared {
    /// The services of a live runtime: `state` as configured, random
    /// numbers from `seed` (or the OS), the clock from now. With `shared`
    /// state the clock counts from the Unix epoch, so every process of a
    /// fleet reads the same time (see `state/redis.rs`).
    pub(crate) fn live(state: Arc<dyn StateStore>, seed: Option<u64>, shared: bool) -> Self {
        let wall_at_epoch = wall_now();
        HostShared {
            state,
            random: RandomSource::new(seed),
            epoch: Instant::now(),
            metrics: PluginMetrics::default(),
            wall_at_epoch,
            origin_ms: if shared {
                clock::duration_ms(wall_at_epoch)
            } else {
                0
            },
        }
    }

    /// Services for a throwaway instance (smoke checks, conformance runs):
    /// on this host's clock, with their own in-memory state, metrics and a
    /// fixed seed, so nothing they do is seen by live plugins.
    pub(crate) fn scratch(&self, seed: u64) -> Self {
        HostShared {
            state: Arc::new(MemoryState::default()),
            random: RandomSource::new(Some(seed)),
            epoch: self.epoch,
            metrics: PluginMetrics::default(),
            wall_at_epoch: self.wall_at_epoch,
            origin_ms: self.origin_ms,
        }
    }
}

/// Real time since the Unix epoch (what WASI's wall clock starts from).
pub(crate) fn wall_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
