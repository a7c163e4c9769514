//! Plugin-defined metrics: kept in a snapshot-able registry (for `status`
//! and the demo's summary) and forwarded to the `metrics` facade, so any
//! exporter the embedder installs (Prometheus, OpenTelemetry) sees them.
//!
//! A plugin may report on every call (the bulkhead plugin sets its limit
//! gauge at each admission), so an update must be cheap: each series keeps
//! the facade's handle, registered on its first report with the recorder
//! in force then (as `pipeline/meters.rs` does for the host's own
//! metrics), and is found by plugin, service and name without allocating.
//! Building the key and asking the recorder on every report made a gauge
//! update cost more than the plugin's whole admission.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge};

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
    counters: Mutex<Registry<u64, Counter>>,
    gauges: Mutex<Registry<f64, Gauge>>,
}

/// One plugin's series, by service and name.
type ByService<V, H> = HashMap<Arc<str>, HashMap<Box<str>, Series<V, H>>>;

/// Series by plugin, service and name.
struct Registry<V, H> {
    series: HashMap<Arc<str>, ByService<V, H>>,
    len: usize,
}

impl<V, H> Default for Registry<V, H> {
    fn default() -> Self {
        Registry {
            series: HashMap::new(),
            len: 0,
        }
    }
}

/// One series' value and the facade's handle for it.
struct Series<V, H> {
    value: V,
    handle: H,
}

/// `name` as it is shown: cut to [`NAME_BYTES`], without control
/// characters (it is printed in `status` and the demo's summary; see
/// `crate::escape`). Borrowed unless it had some.
fn shown(name: &str) -> Cow<'_, str> {
    crate::escape::escape_control(&name[..name.floor_char_boundary(NAME_BYTES)])
}

impl<V: Copy + Default, H> Registry<V, H> {
    /// Applies `update` to the series of `plugin`, `service` and `name`
    /// (its value and its handle); a new series' handle is made by
    /// `register` from the family's name, and it is kept unless there are
    /// [`MAX_SERIES`] already (then its report is only forwarded).
    fn report(
        &mut self,
        (plugin, service, name): (&Arc<str>, &Arc<str>, &str),
        update: impl FnOnce(&mut V, &H),
        register: impl FnOnce(String) -> H,
    ) {
        let name = shown(name);
        if let Some(s) = self
            .series
            .get_mut(&**plugin)
            .and_then(|services| services.get_mut(&**service))
            .and_then(|names| names.get_mut(&*name))
        {
            return update(&mut s.value, &s.handle);
        }
        let mut s = Series {
            value: V::default(),
            handle: register(format!("mender_plugin_{name}")),
        };
        update(&mut s.value, &s.handle);
        if self.len >= MAX_SERIES {
            return;
        }
        self.len += 1;
        self.series
            .entry(plugin.clone())
            .or_default()
            .entry(service.clone())
            .or_default()
            .insert(name.into(), s);
    }

    fn snapshot(&self) -> BTreeMap<SeriesKey, V> {
        let mut all = BTreeMap::new();
        for (plugin, services) in &self.series {
            for (service, names) in services {
                for (name, s) in names {
                    all.insert(
                        (plugin.to_string(), service.to_string(), name.to_string()),
                        s.value,
                    );
                }
            }
        }
        all
    }
}

impl PluginMetrics {
    pub(crate) fn counter_add(
        &self,
        plugin: &Arc<str>,
        service: &Arc<str>,
        name: &str,
        value: u64,
    ) {
        let mut registry = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        registry.report(
            (plugin, service, name),
            |total, handle| {
                *total = total.saturating_add(value);
                handle.increment(value);
            },
            |family| {
                metrics::describe_counter!(family.clone(), PLUGIN_HELP);
                metrics::counter!(family, "plugin" => plugin.to_string(), "service" => service.to_string())
            },
        );
    }

    pub(crate) fn gauge_set(&self, plugin: &Arc<str>, service: &Arc<str>, name: &str, value: f64) {
        let mut registry = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        registry.report(
            (plugin, service, name),
            |last, handle| {
                *last = value;
                handle.set(value);
            },
            |family| {
                metrics::describe_gauge!(family.clone(), PLUGIN_HELP);
                metrics::gauge!(family, "plugin" => plugin.to_string(), "service" => service.to_string())
            },
        );
    }

    /// Every counter, by (plugin, service, name).
    pub fn counters(&self) -> BTreeMap<SeriesKey, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot()
    }

    /// Every gauge, by (plugin, service, name).
    pub fn gauges(&self) -> BTreeMap<SeriesKey, f64> {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_kept_by_plugin_service_and_shown_name() {
        let m = PluginMetrics::default();
        let (p, a, b): (Arc<str>, Arc<str>, Arc<str>) = ("p".into(), "a".into(), "b".into());
        m.counter_add(&p, &a, "calls", 2);
        m.counter_add(&p, &a, "calls", 3);
        m.counter_add(&p, &b, "calls", 1);
        m.gauge_set(&p, &a, "limit", 8.0);
        m.gauge_set(&p, &a, "limit", 5.0);
        // A control character is shown escaped; the raw and escaped names
        // are one series.
        m.counter_add(&p, &a, "odd\u{7}", 1);
        m.counter_add(&p, &a, &shown("odd\u{7}"), 1);
        let counters = m.counters();
        let key = |s: &str, n: &str| ("p".to_owned(), s.to_owned(), n.to_owned());
        assert_eq!(counters[&key("a", "calls")], 5);
        assert_eq!(counters[&key("b", "calls")], 1);
        assert_eq!(counters[&key("a", &shown("odd\u{7}"))], 2);
        assert_eq!(counters.len(), 3);
        assert_eq!(m.gauges()[&key("a", "limit")], 5.0);
    }

    #[test]
    fn the_registry_is_bounded() {
        let m = PluginMetrics::default();
        let (p, s): (Arc<str>, Arc<str>) = ("p".into(), "s".into());
        for i in 0..(MAX_SERIES + 10) {
            m.gauge_set(&p, &s, &format!("g{i}"), 1.0);
        }
        assert_eq!(m.gauges().len(), MAX_SERIES);
        // A kept series still updates.
        m.gauge_set(&p, &s, "g0", 2.0);
        assert_eq!(m.gauges()[&("p".into(), "s".into(), "g0".into())], 2.0);
    }
}
