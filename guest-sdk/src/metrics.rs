//! Plugin-defined metrics, exported by the host with the labels `plugin`
//! and `service`.

use crate::bindings::host::metrics;

/// Add `value` to the counter `name`.
pub fn counter_add(name: &str, value: u64) {
    metrics::counter_add(name, value);
}

/// Set the gauge `name` to `value`.
pub fn gauge_set(name: &str, value: f64) {
    metrics::gauge_set(name, value);
}
