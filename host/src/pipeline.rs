//! A service's pipeline: its strategies in order (each with its lease and
//! outcome cursor), its fallback handlers, its guardrails and its counters.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::bindings::wit;
use crate::config::{Config, DEFAULT_SERVICE, ServiceSpec};
use crate::guardrails::Guardrails;
use crate::outcomes::{Cursor, LeaseCell, ServiceStats};
use crate::plugin::{FallbackPlugin, LoadError, Loaded, StrategyPlugin};

/// Services created on first use (unlisted ones served by `default`) are
/// capped, so a caller inventing service names cannot grow memory without
/// bound; past the cap they share the `default` pipeline itself.
const MAX_DYNAMIC_SERVICES: usize = 1024;

/// One strategy in one service's pipeline.
pub(crate) struct StrategySlot {
    pub(crate) plugin: Arc<StrategyPlugin>,
    pub(crate) lease: LeaseCell,
    pub(crate) cursor: Cursor,
}

impl StrategySlot {
    pub(crate) fn admits(&self) -> bool {
        self.plugin.hooks.contains(wit::Hooks::ADMIT)
    }

    pub(crate) fn decides(&self) -> bool {
        self.plugin.hooks.contains(wit::Hooks::ON_ERROR)
    }
}

/// The plugins and guardrails of a service, before it has counters.
#[derive(Clone)]
pub(crate) struct Template {
    strategies: Vec<Arc<StrategyPlugin>>,
    fallbacks: Vec<Arc<FallbackPlugin>>,
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
            location: config_origin.to_owned(),
            reason: format!(
                "is a {is}, but service `{}` lists it in `{list}`",
                spec.name
            ),
        };
        let mut strategies = Vec::new();
        for name in &spec.strategies {
            match &loaded[name] {
                Loaded::Strategy(p) => strategies.push(p.clone()),
                Loaded::Fallback(_) => {
                    return Err(misplaced(name, "fallback-plugin", "strategies"));
                }
            }
        }
        let mut fallbacks = Vec::new();
        for name in &spec.fallbacks {
            match &loaded[name] {
                Loaded::Fallback(p) => fallbacks.push(p.clone()),
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
    pub(crate) fallbacks: Vec<Arc<FallbackPlugin>>,
    /// Whether any fallback handler wants successful results recorded.
    pub(crate) records_results: bool,
    pub(crate) stats: ServiceStats,
}

impl Pipeline {
    fn new(service: &str, t: &Template) -> Pipeline {
        Pipeline {
            service: Arc::from(service),
            guardrails: t.guardrails.clone(),
            strategies: t
                .strategies
                .iter()
                .map(|p| StrategySlot {
                    plugin: p.clone(),
                    lease: LeaseCell::default(),
                    cursor: Cursor::default(),
                })
                .collect(),
            fallbacks: t.fallbacks.clone(),
            records_results: t.fallbacks.iter().any(|f| f.records_results),
            stats: ServiceStats::default(),
        }
    }
}

/// Every service's pipeline.
pub(crate) struct Pipelines {
    listed: HashMap<String, Arc<Pipeline>>,
    default_template: Template,
    default: Arc<Pipeline>,
    dynamic: RwLock<HashMap<String, Arc<Pipeline>>>,
}

impl Pipelines {
    pub(crate) fn build(
        config: &Config,
        loaded: &HashMap<String, Loaded>,
        config_origin: &str,
    ) -> Result<Pipelines, LoadError> {
        let mut listed = HashMap::new();
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
            listed.insert(spec.name.clone(), Arc::new(Pipeline::new(&spec.name, &t)));
        }
        let default = listed
            .get(DEFAULT_SERVICE)
            .cloned()
            .unwrap_or_else(|| Arc::new(Pipeline::new(DEFAULT_SERVICE, &default_template)));
        Ok(Pipelines {
            listed,
            default_template,
            default,
            dynamic: RwLock::new(HashMap::new()),
        })
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
            .or_insert_with(|| Arc::new(Pipeline::new(service, &self.default_template)))
            .clone()
    }
}
