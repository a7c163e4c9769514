//! Log lines into the host's `tracing` output, tagged by the host with the
//! plugin's name and the service.
//!
//! The macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and
//! [`error!`](crate::error) take `format!` arguments.

use crate::bindings::host::log::{Level, write};

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
    ($($arg:tt)+) => { $crate::log::trace(&::std::format!($($arg)+)) };
}

/// Log at `debug` level, with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}

/// Log at `info` level, with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}

/// Log at `warn` level, with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}

/// Log at `error` level, with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}
