//! The plugin sandbox's limits (`[limits]`, a plugin's `limits`): their
//! defaults with the reason for each, and their ranges.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ranges::{self, TomlDuration};
use super::{ConfigError, QuarantinePolicy, Source, StateQuota};

/// The plugin sandbox's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit on one hook call (`admit`, `on-error`, `serve`).
    pub hook_timeout: Duration,
    /// Wall-clock limit on instantiating and `init`.
    pub init_timeout: Duration,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Warm instances kept per plugin.
    pub pool_size: usize,
    /// Largest text a plugin may hand back (fallback body, reason), bytes.
    pub max_answer_bytes: usize,
    /// When a plugin that keeps faulting is benched.
    pub quarantine: QuarantinePolicy,
    /// What the plugin may keep in state per service (`state-kib`,
    /// `state-keys`; see [`crate::host::state::quota`]).
    pub state_quota: StateQuota,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A decision takes microseconds; 100 ms is a thousand-fold
            // headroom and still small next to the network call it guards.
            hook_timeout: Duration::from_millis(100),
            // Python and JavaScript components start their interpreter in
            // init, which takes hundreds of milliseconds on a busy machine.
            init_timeout: Duration::from_secs(10),
            // Enough for interpreted-language components (tens of MiB of
            // heap), small enough that a memory bomb is stopped early.
            memory_bytes: 128 << 20,
            // One warm instance per core can be busy at once; more idle
            // instances would only hold memory.
            pool_size: std::thread::available_parallelism().map_or(2, |n| n.get()),
            // A substitute answer is a page of JSON, not a download; 1 MiB
            // is generous and still bounds what a plugin can push on us.
            max_answer_bytes: 1 << 20,
            quarantine: QuarantinePolicy::default(),
            // Reasons with the numbers, in `StateQuota::default`.
            state_quota: StateQuota::default(),
        }
    }
}

/// Optional limit settings as written in `mender.toml` (`[limits]` or a
/// plugin's `limits` table); unset fields inherit. Spanned, so a value out
/// of its range (`ranges.rs`) is refused where it is written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsToml {
    hook_timeout: Option<Spanned<TomlDuration>>,
    init_timeout: Option<Spanned<TomlDuration>>,
    memory_mib: Option<Spanned<u64>>,
    pool_size: Option<Spanned<u64>>,
    max_answer_kib: Option<Spanned<u64>>,
    quarantine_after: Option<Spanned<u64>>,
    quarantine_window: Option<Spanned<TomlDuration>>,
    quarantine_for: Option<Spanned<TomlDuration>>,
    state_kib: Option<Spanned<u64>>,
    state_keys: Option<Spanned<u64>>,
}

impl LimitsToml {
    /// `base` with the fields set here replaced; `Err` carries the byte
    /// offset of a value out of range, and why.
    pub(super) fn apply(&self, base: &Limits) -> Result<Limits, (usize, String)> {
        // Every range's maximum fits a usize and shifts without overflow.
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Limits {
            hook_timeout: ranges::HOOK_TIMEOUT
                .check("hook-timeout", self.hook_timeout.as_ref())?
                .unwrap_or(base.hook_timeout),
            init_timeout: ranges::INIT_TIMEOUT
                .check("init-timeout", self.init_timeout.as_ref())?
                .unwrap_or(base.init_timeout),
            memory_bytes: ranges::MEMORY_MIB
                .check("memory-mib", self.memory_mib.as_ref())?
                .map_or(base.memory_bytes, |m| size(m) << 20),
            pool_size: ranges::POOL_SIZE
                .check("pool-size", self.pool_size.as_ref())?
                .map_or(base.pool_size, size),
            max_answer_bytes: ranges::MAX_ANSWER_KIB
                .check("max-answer-kib", self.max_answer_kib.as_ref())?
                .map_or(base.max_answer_bytes, |k| size(k) << 10),
            quarantine: QuarantinePolicy {
                after: ranges::QUARANTINE_AFTER
                    .check("quarantine-after", self.quarantine_after.as_ref())?
                    .map_or(base.quarantine.after, |n| {
                        u32::try_from(n).unwrap_or(u32::MAX)
                    }),
                window: ranges::QUARANTINE_TIME
                    .check("quarantine-window", self.quarantine_window.as_ref())?
                    .unwrap_or(base.quarantine.window),
                cool_down: ranges::QUARANTINE_TIME
                    .check("quarantine-for", self.quarantine_for.as_ref())?
                    .unwrap_or(base.quarantine.cool_down),
            },
            state_quota: StateQuota {
                max_bytes: self
                    .state_kib
                    .as_ref()
                    .map_or(base.state_quota.max_bytes, |k| k.get_ref() << 10),
                max_keys: self
                    .state_keys
                    .as_ref()
                    .map_or(base.state_quota.max_keys, |k| *k.get_ref()),
            },
        })
    }

    /// Refuses a state quota out of range, pointing at the value.
    pub(super) fn check_state_quota(
        &self,
        src: &Source<'_>,
        table: &str,
    ) -> Result<(), ConfigError> {
        let ranges = [
            ("state-kib", &self.state_kib, StateQuota::MAX_KIB),
            ("state-keys", &self.state_keys, StateQuota::MAX_KEYS),
        ];
        for (name, value, max) in ranges {
            if let Some(v) = value
                && !(1..=max).contains(v.get_ref())
            {
                return Err(src.error(
                    v.span().start,
                    format!(
                        "{table}: `{name}` must be between 1 and {max} (got {})",
                        v.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }
}
