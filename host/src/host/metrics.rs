//! Plugin-defined metrics: kept in a snapshot-able registry (for `status`
//! and the demo's summary) and forwarded to the `metrics` facade, so any
//! exporter the embedder installs (Prometheus, OpenTelemetry) sees them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Metric names longer than this are cut: a name is a label, not a payload.
const NAME_BYTES: usize = 64;
/// Distinct metrics kept; past this, new names are only forwarded, so a
/// plugin inventing names in a loop cannot grow the registry without bound.
const MAX_SERIES: usize = 4096;

/// The `# HELP` of every plugin-defined family (described when a series
/// is first seen; the plugin chose the name).
const PLUGIN_HELP: &str =
    "Reported by the plugin through the WIT metrics interface (labels: plugin, service)";

/// One metric series: (plugin, service, name).
pub type SeriesKey = (String, String, String);

/// Counters and gauges reported by plugins.
#[derive(Default)]
pub struct PluginMetrics {
    counters: Mutex<BTreeMap<SeriesKey, u64>>,
    gauges: Mutex<BTreeMap<SeriesKey, f64>>,
}

fn series(plugin: &str, service: &str, name: &str) -> SeriesKey {
    let name = &name[..name.floor_char_boundary(NAME_BYTES)];
    // A name is printed in `status` and the demo's summary: no control
    // characters (see `crate::escape`).
    let name = crate::escape::escape_control(name).into_owned();
    (plugin.to_owned(), service.to_owned(), name)
}

impl PluginMetrics {
    pub(crate) fn counter_add(&self, plugin: &str, service: &str, name: &str, value: u64) {
        let key = series(plugin, service, name);
        metrics::counter!(
            format!("mender_plugin_{}", key.2),
            "plugin" => key.0.clone(),
            "service" => key.1.clone()
        )
        .increment(value);
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) {
            metrics::describe_counter!(format!("mender_plugin_{}", key.2), PLUGIN_HELP);
        }
        if map.len() < MAX_SERIES || map.contains_key(&key) {
            *map.entry(key).or_default() += value;
        }
    }

    pub(crate) fn gauge_set(&self, plugin: &str, service: &str, name: &str, value: f64) {
        let key = series(plugin, service, name);
        metrics::gauge!(
            format!("mender_plugin_{}", key.2),
            "plugin" => key.0.clone(),
            "service" => key.1.clone()
        )
        .set(value);
        let mut map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) {
            metrics::describe_gauge!(format!("mender_plugin_{}", key.2), PLUGIN_HELP);
        }
        if map.len() < MAX_SERIES || map.contains_key(&key) {
            map.insert(key, value);
        }
    }

    /// Every counter, by (plugin, service, name).
    pub fn counters(&self) -> BTreeMap<SeriesKey, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every gauge, by (plugin, service, name).
    pub fn gauges(&self) -> BTreeMap<SeriesKey, f64> {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
