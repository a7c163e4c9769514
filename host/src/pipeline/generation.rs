//! A generation: one consistent set of loaded plugins and pipelines, built
//! from one configuration. Calls run on the generation that was live when
//! they started; a reload builds the next generation off the hot path and
//! swaps it in whole (see `reload.rs`).
//!
//! Building the next generation reuses what did not change: a plugin whose
//! component bytes and table are the same as before keeps its loaded
//! instance (warm pool, fault counters, leases). A plugin that changed is
//! compiled (or fetched from the artefact cache), initialised and given a
//! smoke check; if any of that fails, the previous version keeps serving
//! and the plugin's status says why.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

use super::{Pipelines, smoke};
use crate::config::{Config, PluginSpec};
use crate::host::HostShared;
use crate::plugin::cache::ArtifactCache;
use crate::plugin::host_api::HostState;
use crate::plugin::{self, LoadContext, LoadError, Loaded, Source};

/// What every generation is loaded with.
pub(crate) struct Loader {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) shared: Arc<HostShared>,
    pub(crate) cache: ArtifactCache,
}

/// One plugin as a generation holds it.
#[derive(Clone)]
pub(crate) struct PluginEntry {
    /// The table it was loaded from.
    pub(crate) spec: PluginSpec,
    pub(crate) loaded: Loaded,
    /// SHA-256 of the component's bytes.
    pub(crate) content: Arc<str>,
    /// The generation this version was loaded in.
    pub(crate) version: u64,
    /// Why the newest version was refused, while an older one serves.
    pub(crate) reload_error: Option<String>,
}

/// Plugins and pipelines built from one configuration.
pub(crate) struct Generation {
    /// 1 for the runtime as built, then one more per applied reload.
    pub(crate) number: u64,
    pub(crate) pipelines: Pipelines,
    /// In config order.
    pub(crate) plugins: Vec<PluginEntry>,
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The generation now serving.
    pub generation: u64,
    /// Plugins loaded anew (new or changed), now serving new calls.
    pub loaded: Vec<String>,
    /// Plugins whose component and table did not change: kept as they were.
    pub unchanged: Vec<String>,
    /// Plugins whose new version was refused, with the reason: their
    /// previous version keeps serving.
    pub refused: Vec<(String, String)>,
    /// Plugins no longer in the configuration.
    pub removed: Vec<String>,
}

/// Whether two tables load the same plugin (where they sit in the file
/// does not matter).
fn same_table(a: &PluginSpec, b: &PluginSpec) -> bool {
    PluginSpec {
        location: String::new(),
        ..a.clone()
    } == PluginSpec {
        location: String::new(),
        ..b.clone()
    }
}

impl Loader {
    fn context(&self) -> LoadContext<'_> {
        LoadContext {
            engine: &self.engine,
            linker: &self.linker,
            cache: &self.cache,
        }
    }

    /// Loads a plugin from its source, read once by the caller; with
    /// `smoke`, a scratch instance must first answer each of its hooks
    /// without a fault.
    fn load(
        &self,
        spec: &PluginSpec,
        source: Result<Source, LoadError>,
        smoke: bool,
    ) -> Result<PluginEntry, LoadError> {
        let cx = self.context();
        let source = source?;
        let prepared = plugin::prepare(&cx, spec, &source)?;
        if smoke {
            smoke::check(&self.engine, &self.shared, spec, &prepared)?;
        }
        let loaded = plugin::instantiate(&self.engine, &self.shared, spec, &prepared)?;
        Ok(PluginEntry {
            spec: spec.clone(),
            loaded,
            content: source.sha256.into(),
            version: 0,
            reload_error: None,
        })
    }

    /// The first generation: every plugin must load.
    pub(crate) fn first(&self, config: &Config, origin: &str) -> Result<Generation, LoadError> {
        let mut plugins = Vec::new();
        for spec in &config.plugins {
            let mut entry = self.load(spec, plugin::read_source(spec), false)?;
            entry.version = 1;
            plugins.push(entry);
        }
        let pipelines = Pipelines::build(config, &by_name(&plugins), origin, None)?;
        Ok(Generation {
            number: 1,
            pipelines,
            plugins,
        })
    }

    /// The generation after `before`, for `config`. A plugin whose new
    /// version fails keeps its previous version (and says why); the reload
    /// as a whole fails only when there is no previous version to keep, or
    /// the pipelines cannot be built.
    pub(crate) fn next(
        &self,
        before: &Generation,
        config: &Config,
        origin: &str,
    ) -> Result<(Generation, ReloadReport), LoadError> {
        let number = before.number + 1;
        let mut report = ReloadReport {
            generation: number,
            ..ReloadReport::default()
        };
        let previous: HashMap<&str, &PluginEntry> = before
            .plugins
            .iter()
            .map(|e| (e.spec.name.as_str(), e))
            .collect();
        let mut plugins = Vec::new();
        for spec in &config.plugins {
            let old = previous.get(spec.name.as_str()).copied();
            let source = plugin::read_source(spec);
            let unchanged = old.filter(|old| {
                same_table(&old.spec, spec)
                    && source.as_ref().is_ok_and(|s| *old.content == s.sha256)
            });
            if let Some(old) = unchanged {
                report.unchanged.push(spec.name.clone());
                plugins.push(PluginEntry {
                    spec: spec.clone(),
                    reload_error: None,
                    ..old.clone()
                });
                continue;
            }
            match (self.load(spec, source, true), old) {
                (Ok(mut entry), _) => {
                    entry.version = number;
                    report.loaded.push(spec.name.clone());
                    plugins.push(entry);
                }
                (Err(e), Some(old)) => {
                    let reason = e.to_string();
                    tracing::warn!(target: "mender::reload", plugin = %spec.name, "reload refused, the previous version keeps serving: {reason}");
                    report.refused.push((spec.name.clone(), reason.clone()));
                    plugins.push(PluginEntry {
                        reload_error: Some(reason),
                        ..old.clone()
                    });
                }
                (Err(e), None) => return Err(e),
            }
        }
        for old in &before.plugins {
            if !config.plugins.iter().any(|s| s.name == old.spec.name) {
                report.removed.push(old.spec.name.clone());
            }
        }
        let pipelines =
            Pipelines::build(config, &by_name(&plugins), origin, Some(&before.pipelines))?;
        Ok((
            Generation {
                number,
                pipelines,
                plugins,
            },
            report,
        ))
    }
}

fn by_name(plugins: &[PluginEntry]) -> HashMap<String, Loaded> {
    plugins
        .iter()
        .map(|e| (e.spec.name.clone(), e.loaded.clone()))
        .collect()
}
