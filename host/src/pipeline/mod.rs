//! A service's pipeline: its strategies in order (each with its lease and
//! outcome cursor), its fallback handlers, its guardrails and its counters.

pub(crate) mod bulkhead;
pub(crate) mod detail;
pub(crate) mod generation;
pub(crate) mod in_flight;
pub(crate) mod meters;
pub(crate) mod outcomes;
pub(crate) mod retry_budget;
mod smoke;
pub(crate) mod strategy;
pub(crate) mod window;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::{Config, DEFAULT_SERVICE, Guardrails, ServiceSpec};
use crate::plugin::bindings::wit;
use crate::plugin::{LoadError, Loaded};
use detail::DetailCursor;
use meters::{ServiceMeters, SlotMeters};
use outcomes::{Cursor, LeaseCell, ServiceStats};
pub(crate) use strategy::{Fallback, Strategy};
use window::SharedWindow;

/// Services created on first use (unlisted ones served by `default`) are
/// capped, so a caller inventing service names cannot grow memory without
/// bound; past the cap they share the `default` pipeline itself.
const MAX_DYNAMIC_SERVICES: usize = 1024;

/// One strategy in one service's pipeline.
///
/// The lease and cursor are shared with the slot of the same plugin in the
/// pipeline a reload replaced (see [`Pipelines::build`]).
pub(crate) struct StrategySlot {
    pub(crate) plugin: Arc<dyn Strategy>,
    pub(crate) lease: Arc<LeaseCell>,
    pub(crate) cursor: Arc<Cursor>,
    /// The cursor of 0.2's detail (`detail.rs`), carried like `cursor`.
    pub(crate) detail: Arc<DetailCursor>,
    /// The plugin's slow-call threshold (ms), if it declared one.
    pub(crate) slow_call_threshold: Option<u64>,
    pub(crate) meters: SlotMeters,
}

impl StrategySlot {
    pub(crate) fn admits(&self) -> bool {
        self.plugin.hooks().contains(wit::Hooks::ADMIT)
    }

    pub(crate) fn decides(&self) -> bool {
        self.plugin.hooks().contains(wit::Hooks::ON_ERROR)
    }

    /// The detail report for a hook call at host time `now_ms` (the host
    /// clock started at `start_ms`), with `in_flight` other attempts of
    /// the service in flight: taken only for a plugin that can read it
    /// (contract 0.2), else empty.
    pub(crate) fn take_detail(
        &self,
        stats: &ServiceStats,
        now_ms: u64,
        start_ms: u64,
        in_flight: u32,
    ) -> crate::plugin::current::RecentDetail {
        if self.plugin.reads_detail() {
            let mut detail = self.detail.take(&stats.detail, now_ms, start_ms);
            detail.in_flight = in_flight;
            detail
        } else {
            crate::plugin::current::RecentDetail::default()
        }
    }
}

/// The plugins and guardrails of a service, before it has counters.
#[derive(Clone)]
pub(crate) struct Template {
    strategies: Vec<Arc<dyn Strategy>>,
    fallbacks: Vec<Arc<dyn Fallback>>,
    guardrails: Guardrails,
}

impl Template {
    fn resolve(
        spec: &ServiceSpec,
        loaded: &HashMap<String, Loaded>,
        config_origin: &str,
    ) -> Result<Template, LoadError> {
        let misplaced = |name: &str, is: &str, list: &str| LoadError {
            plugin: name.to_owned(),
            location: spec
                .plugin_locations
                .get(name)
                .cloned()
                .unwrap_or_else(|| config_origin.to_owned()),
            reason: format!(
                "is a {is}, but service `{}` lists it in `{list}`",
                spec.name
            ),
        };
        let mut strategies = Vec::new();
        for name in &spec.strategies {
            match &loaded[name] {
                Loaded::Strategy(p) => strategies.push(p.clone() as Arc<dyn Strategy>),
                Loaded::Fallback(_) => {
                    return Err(misplaced(name, "fallback-plugin", "strategies"));
                }
            }
        }
        let mut fallbacks = Vec::new();
        for name in &spec.fallbacks {
            match &loaded[name] {
                Loaded::Fallback(p) => fallbacks.push(p.clone() as Arc<dyn Fallback>),
                Loaded::Strategy(_) => return Err(misplaced(name, "strategy-plugin", "fallbacks")),
            }
        }
        Ok(Template {
            strategies,
            fallbacks,
            guardrails: spec.guardrails.clone(),
        })
    }
}

/// A service's live pipeline.
pub(crate) struct Pipeline {
    pub(crate) service: Arc<str>,
    pub(crate) guardrails: Guardrails,
    pub(crate) strategies: Vec<StrategySlot>,
    pub(crate) fallbacks: Vec<Arc<dyn Fallback>>,
    /// Whether any fallback handler wants successful results recorded.
    pub(crate) records_results: bool,
    /// Shared with the service's pipeline before a reload, so counters
    /// run on across it.
    pub(crate) stats: Arc<ServiceStats>,
    /// The `max-in-flight` slots, shared across reloads like `stats`.
    pub(crate) bulkhead: Arc<bulkhead::Bulkhead>,
    /// The last minute, for the runtime's activity; shared across reloads
    /// like `stats`.
    pub(crate) window: Arc<SharedWindow>,
    /// Metric handles of the happy path, registered on first use.
    pub(crate) meters: ServiceMeters,
    /// Whether any strategy declared a slow-call threshold (else a
    /// success costs nothing more for them).
    counts_slow_calls: bool,
}

impl Pipeline {
    /// What contract 0.2 counts per plugin of a success that took
    /// `latency_ms`: its slow calls, and the permits (by strategy index)
    /// its attempt was granted.
    #[inline]
    pub(crate) fn record_success_detail(&self, latency_ms: u64, permits: &[(usize, u64)]) {
        if self.counts_slow_calls {
            for slot in &self.strategies {
                if let Some(threshold) = slot.slow_call_threshold {
                    slot.detail.record_latency(latency_ms, threshold);
                }
            }
        }
        for (i, permit) in permits {
            if let Some(slot) = self.strategies.get(*i) {
                slot.detail.record_permitted_success(*permit);
            }
        }
    }

    /// A pipeline for `service` from a template; `before` is the service's
    /// pipeline in the configuration a reload replaces.
    ///
    /// What carries over from `before`: the service's counters; each
    /// strategy's outcome cursor (a new version of a plugin is told what
    /// happened since the old one was last asked, not everything again);
    /// and a strategy's lease only when the plugin itself is unchanged (a
    /// lease is the promise of the version that granted it).
    fn new(service: &str, t: &Template, before: Option<&Pipeline>) -> Pipeline {
        let slot_before = |p: &Arc<dyn Strategy>| {
            before.and_then(|b| b.strategies.iter().find(|s| s.plugin.name() == p.name()))
        };
        let stats: Arc<ServiceStats> = before.map(|b| b.stats.clone()).unwrap_or_default();
        if t.strategies.iter().any(|p| p.reads_detail()) {
            stats.detail.enable();
        }
        Pipeline {
            service: Arc::from(service),
            guardrails: t.guardrails.clone(),
            strategies: t
                .strategies
                .iter()
                .map(|p| {
                    let old = slot_before(p);
                    StrategySlot {
                        plugin: p.clone(),
                        lease: old
                            .filter(|s| Arc::ptr_eq(&s.plugin, p))
                            .map(|s| s.lease.clone())
                            .unwrap_or_default(),
                        cursor: old.map(|s| s.cursor.clone()).unwrap_or_default(),
                        detail: old.map(|s| s.detail.clone()).unwrap_or_default(),
                        slow_call_threshold: p.slow_call_threshold(),
                        meters: SlotMeters::default(),
                    }
                })
                .collect(),
            fallbacks: t.fallbacks.clone(),
            records_results: t.fallbacks.iter().any(|f| f.records_results()),
            stats,
            bulkhead: before.map(|b| b.bulkhead.clone()).unwrap_or_default(),
            window: before.map(|b| b.window.clone()).unwrap_or_default(),
            meters: ServiceMeters::default(),
            counts_slow_calls: t
                .strategies
                .iter()
                .any(|p| p.slow_call_threshold().is_some()),
        }
    }
}

impl Pipeline {
    /// A pipeline of these strategies and fallbacks, with fresh leases and
    /// counters: for plain-Rust deciders (the call loop's unit tests).
    #[cfg(test)]
    pub(crate) fn of(
        service: &str,
        guardrails: Guardrails,
        strategies: Vec<Arc<dyn Strategy>>,
        fallbacks: Vec<Arc<dyn Fallback>>,
    ) -> Pipeline {
        let t = Template {
            strategies,
            fallbacks,
            guardrails,
        };
        Pipeline::new(service, &t, None)
    }
}

/// Pipelines by service name. Every call looks its service up here, and
/// std's SipHash of a short name was about a tenth of a successful call's
/// host cost; foldhash (hashbrown's own default, randomly seeded, so still
/// not predictable from outside) takes a few nanoseconds.
type ByService = HashMap<String, Arc<Pipeline>, foldhash::fast::RandomState>;

/// Every service's pipeline.
pub(crate) struct Pipelines {
    listed: ByService,
    default_template: Template,
    default: Arc<Pipeline>,
    dynamic: RwLock<ByService>,
}

impl Pipelines {
    /// Every service's pipeline for `config`. `before` is the set a reload
    /// replaces: each service's pipeline carries over what
    /// [`Pipeline::new`] says, services made on first use included.
    pub(crate) fn build(
        config: &Config,
        loaded: &HashMap<String, Loaded>,
        config_origin: &str,
        before: Option<&Pipelines>,
    ) -> Result<Pipelines, LoadError> {
        let mut listed = ByService::default();
        let mut default_template = Template {
            strategies: Vec::new(),
            fallbacks: Vec::new(),
            guardrails: config.guardrails.clone(),
        };
        for spec in &config.services {
            let t = Template::resolve(spec, loaded, config_origin)?;
            if spec.name == DEFAULT_SERVICE {
                default_template = t.clone();
            }
            let old = before.and_then(|b| b.existing(&spec.name));
            listed.insert(
                spec.name.clone(),
                Arc::new(Pipeline::new(&spec.name, &t, old.as_deref())),
            );
        }
        let default = listed.get(DEFAULT_SERVICE).cloned().unwrap_or_else(|| {
            let old = before.map(|b| b.default.clone());
            Arc::new(Pipeline::new(
                DEFAULT_SERVICE,
                &default_template,
                old.as_deref(),
            ))
        });
        let mut dynamic = ByService::default();
        if let Some(before) = before {
            let old = before.dynamic.read().unwrap_or_else(|p| p.into_inner());
            for (service, p) in old.iter().chain(&before.listed) {
                if !listed.contains_key(service) && !dynamic.contains_key(service) {
                    let carried = Pipeline::new(service, &default_template, Some(p));
                    dynamic.insert(service.clone(), Arc::new(carried));
                }
            }
        }
        Ok(Pipelines {
            listed,
            default_template,
            default,
            dynamic: RwLock::new(dynamic),
        })
    }

    /// The pipeline `service` has now, without making one.
    fn existing(&self, service: &str) -> Option<Arc<Pipeline>> {
        if let Some(p) = self.listed.get(service) {
            return Some(p.clone());
        }
        if service == DEFAULT_SERVICE {
            return Some(self.default.clone());
        }
        let dynamic = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
        dynamic.get(service).cloned()
    }

    /// The pipeline of `service`: its own if listed, else one made from
    /// `default` with its own counters and leases.
    pub(crate) fn get(&self, service: &str) -> Arc<Pipeline> {
        if let Some(p) = self.listed.get(service) {
            return p.clone();
        }
        if let Some(p) = self
            .dynamic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
        {
            return p.clone();
        }
        let mut dynamic = self.dynamic.write().unwrap_or_else(|p| p.into_inner());
        if dynamic.len() >= MAX_DYNAMIC_SERVICES {
            return self.default.clone();
        }
        dynamic
            .entry(service.to_owned())
            .or_insert_with(|| Arc::new(Pipeline::new(service, &self.default_template, None)))
            .clone()
    }
}
