//! Reloading a running [`Runtime`]: new plugins and configuration, swapped
//! in while calls are in flight, without losing one.
//!
//! A reload reads the configuration again, builds the next generation off
//! the hot path (compiling only what changed, smoke-checking every new
//! version) and swaps it in with one atomic pointer store. A call holds the
//! pipeline it started with until it ends, so in-flight calls finish on the
//! versions they began with and new calls start on the new ones. A bad
//! configuration, or a plugin with no good version, leaves the live
//! generation untouched; a plugin whose new version is bad keeps serving
//! its previous one. Either way the error is logged and shown in the
//! status until a good version arrives.
//!
//! Plugin state lives in the host's state store, which outlives
//! generations: a circuit that was open stays open across the swap.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ReloadError, Runtime};
use crate::config::Config;
use crate::pipeline::generation::ReloadReport;

/// Where a runtime's configuration comes from, so a reload can read it
/// again.
#[derive(Clone, Debug)]
pub(crate) enum ConfigSource {
    /// A `mender.toml`, read again at each reload.
    File(PathBuf),
    /// A configuration given as a value (or text): reloads read the plugin
    /// files it names again.
    Value(Box<Config>),
}

/// What the reloads of a runtime did.
#[derive(Debug, Default)]
pub(crate) struct ReloadLog {
    applied: u64,
    failed: u64,
    last_error: Option<String>,
}

/// The reload state of a runtime, for status views.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The generation serving new calls (1: as built).
    pub generation: u64,
    /// Reloads applied (some plugins may have kept their previous version).
    pub applied: u64,
    /// Reloads refused whole (the previous generation kept serving).
    pub failed: u64,
    /// `Some("reload failed: …")` while the newest configuration, or a
    /// plugin's newest version, is refused; `None` once all is current.
    pub error: Option<String>,
}

impl Runtime {
    /// Reads the configuration again (its file, for a runtime built with
    /// [`config_file`](crate::RuntimeBuilder::config_file)) and every plugin
    /// it names, and swaps in what changed. Compiling runs on tokio's
    /// blocking pool, off the tasks making calls.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let rt = self.clone();
        tokio::task::spawn_blocking(move || rt.reload_blocking(None))
            .await
            .map_err(ReloadError::Task)?
    }

    /// Like [`reload`](Self::reload), with a new configuration, which later
    /// reloads keep using.
    pub async fn reload_with(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let rt = self.clone();
        tokio::task::spawn_blocking(move || rt.reload_blocking(Some(config)))
            .await
            .map_err(ReloadError::Task)?
    }

    /// The reload on the calling thread, for embedders outside async code.
    /// One reload runs at a time; a second waits for the first.
    pub fn reload_blocking(&self, config: Option<Config>) -> Result<ReloadReport, ReloadError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| -> Result<ReloadReport, ReloadError> {
            let (config, origin) = {
                let mut source = inner.source.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(config) = config {
                    *source = ConfigSource::Value(Box::new(config));
                }
                match &*source {
                    ConfigSource::File(path) => {
                        (Config::from_file(path)?, path.display().to_string())
                    }
                    ConfigSource::Value(c) => ((**c).clone(), "<config>".to_owned()),
                }
            };
            if config.state != inner.state_config {
                return Err(ReloadError::StateChanged { origin });
            }
            let before = inner.live.load_full();
            let (next, report) = inner.loader.next(&before, &config, &origin)?;
            inner.live.store(Arc::new(next));
            Ok(report)
        })();
        let mut log = inner.reloads.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(report) => {
                log.applied += 1;
                log.last_error = None;
                tracing::info!(
                    target: "mender::reload",
                    generation = report.generation,
                    loaded = ?report.loaded,
                    refused = report.refused.len(),
                    "reload applied"
                );
            }
            Err(e) => {
                log.failed += 1;
                log.last_error = Some(e.to_string());
                tracing::warn!(target: "mender::reload", "reload failed, the previous configuration keeps serving: {e}");
            }
        }
        result
    }

    /// The generation serving, how many reloads were applied or refused,
    /// and what is refused now.
    pub fn reload_status(&self) -> ReloadStatus {
        let log = self.inner.reloads.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.inner.live.load();
        let refused: Vec<String> = live
            .plugins
            .iter()
            .filter_map(|e| e.reload_error.clone())
            .collect();
        let error = log
            .last_error
            .clone()
            .or_else(|| (!refused.is_empty()).then(|| refused.join("; ")));
        ReloadStatus {
            generation: live.number,
            applied: log.applied,
            failed: log.failed,
            error: error.map(|e| format!("reload failed: {e}")),
        }
    }
}
