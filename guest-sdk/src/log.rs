//! Log lines into the host's `tracing` output, tagged by the host with the
//! plugin's name and the service.
//!
//! The macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and
//! [`error!`](crate::error) take `format!` arguments, and build the
//! message only if the host would write it (see [`enabled`]).

pub use crate::bindings::host::log::Level;
use crate::bindings::host::log::write;

/// Whether a line at `level` would be written now. The macros ask before
/// formatting: on a hot path (a backoff's `on-error`), formatting a debug
/// line and handing it to a host that drops it cost more than the
/// decision. Off wasm (unit tests) nothing is written: `false`.
pub fn enabled(level: Level) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::log::enabled(level)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = level;
        false
    }
}

/// Very detailed diagnostics.
pub fn trace(message: &str) {
    write(Level::Trace, message);
}

/// Diagnostics.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Normal operation worth noting.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Something unexpected that the plugin handled.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Something the plugin could not handle.
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// Log at `trace` level, with `format!` arguments.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Trace) {
            $crate::log::trace(&::std::format!($($arg)+))
        }
    };
}

/// Log at `debug` level, with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::debug(&::std::format!($($arg)+))
        }
    };
}

/// Log at `info` level, with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            $crate::log::info(&::std::format!($($arg)+))
        }
    };
}

/// Log at `warn` level, with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            $crate::log::warn(&::std::format!($($arg)+))
        }
    };
}

/// Log at `error` level, with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Error) {
            $crate::log::error(&::std::format!($($arg)+))
        }
    };
}
