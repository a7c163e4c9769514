//! The allowed range of each `[limits]` setting, and the check that refuses
//! a value outside it, saying where and what would be accepted.
//!
//! Without ranges, `memory-mib = 17592186044416` wrapped to 0 bytes, and
//! zero timeouts or a pool of 0 made every fault a matter of timing. The
//! bounds are wide: they keep a typo from becoming a silent misbehaviour,
//! not a deployment from choosing its limits.

use std::time::Duration;

use toml::Spanned;

/// An inclusive range a setting must fall in.
pub(crate) struct Range<T> {
    pub(crate) min: T,
    pub(crate) max: T,
}

/// `hook-timeout`: a hook runs on the caller's task, so minutes would stall
/// it; a millisecond is the least a deadline can mean at the epoch tick.
pub(crate) const HOOK_TIMEOUT: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
};

/// `init-timeout`: interpreters start in hundreds of milliseconds; ten
/// minutes is far past any real start-up.
pub(crate) const INIT_TIMEOUT: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(600),
};

/// `memory-mib`, all of one instance's linear memories together: at least
/// one 64 KiB page, at most 16 GiB (four times a 32-bit memory's 4 GiB).
pub(crate) const MEMORY_MIB: Range<u64> = Range {
    min: 1,
    max: 16_384,
};

/// `pool-size`: at least one warm instance (0 would make every call
/// instantiate, so faults would depend on timing), at most a thousand.
pub(crate) const POOL_SIZE: Range<u64> = Range { min: 1, max: 1024 };

/// `max-answer-kib`: at least 1 KiB, at most 64 MiB.
pub(crate) const MAX_ANSWER_KIB: Range<u64> = Range {
    min: 1,
    max: 65_536,
};

/// `quarantine-after`: 0 turns quarantine off; more than a million faults
/// in a window is the same as off.
pub(crate) const QUARANTINE_AFTER: Range<u64> = Range {
    min: 0,
    max: 1_000_000,
};

/// `quarantine-window` and `quarantine-for`: a millisecond to a day.
pub(crate) const QUARANTINE_TIME: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(86_400),
};

/// Formats a bound as it is written in `mender.toml`.
pub(crate) trait Written {
    fn written(&self) -> String;
}

impl Written for u64 {
    fn written(&self) -> String {
        self.to_string()
    }
}

impl Written for Duration {
    fn written(&self) -> String {
        format!("\"{}\"", humantime::format_duration(*self))
    }
}

impl<T: PartialOrd + Copy + Written> Range<T> {
    /// `value` if in range; else the byte offset of the value and why.
    pub(crate) fn check(
        &self,
        key: &str,
        value: Option<&Spanned<impl Copy + Into<T>>>,
    ) -> Result<Option<T>, (usize, String)> {
        let Some(spanned) = value else {
            return Ok(None);
        };
        let v: T = (*spanned.get_ref()).into();
        if v < self.min || v > self.max {
            return Err((
                spanned.span().start,
                format!(
                    "`{key}` = {} is out of range: allowed {} to {}",
                    v.written(),
                    self.min.written(),
                    self.max.written()
                ),
            ));
        }
        Ok(Some(v))
    }
}

/// A `mender.toml` duration (`"250ms"`), for [`Spanned`] fields.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct TomlDuration(#[serde(with = "humantime_serde")] pub(crate) Duration);

impl From<TomlDuration> for Duration {
    fn from(d: TomlDuration) -> Duration {
        d.0
    }
}
