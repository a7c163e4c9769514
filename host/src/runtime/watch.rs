//! Watching the configuration file and plugin files, and reloading when
//! they change.
//!
//! Editors and build tools write a file in several steps (truncate, write,
//! rename over), so events are debounced and a reload runs once the files
//! have been quiet for [`DEBOUNCE`]. Directories are watched rather than
//! files, because a rename over a watched file ends the watch on most
//! platforms; events for other files in those directories are ignored.
//! After each reload the set of watched files is read again from the live
//! configuration, so a plugin added by a reload is watched from then on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::{ReloadError, Runtime};
use crate::config::PluginSource;
use crate::pipeline::generation::ReloadReport;
use crate::runtime::reload::ConfigSource;

/// Quiet time before a reload: long enough to cover the steps of one save
/// or one `cargo build`, short enough to feel immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {reason}")]
pub struct WatchError {
    /// The file or directory.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// Watching in progress; dropping it stops watching.
pub struct Watcher {
    _debouncer: Arc<Mutex<Debouncer<RecommendedWatcher, RecommendedCache>>>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What each reload the watcher ran gave, for embedders that want to show
/// it (the runtime's status and logs have it too).
pub type ReloadResult = Result<ReloadReport, Arc<ReloadError>>;

impl Runtime {
    /// Watches the configuration file (for a runtime built from one) and
    /// every plugin file, and reloads when they change. `on_reload` is
    /// called with each reload's result. Must be called inside a tokio
    /// runtime; reloads run on it until the [`Watcher`] is dropped.
    pub fn watch(
        &self,
        on_reload: impl Fn(ReloadResult) + Send + Sync + 'static,
    ) -> Result<Watcher, WatchError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
        let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            if let Ok(events) = result {
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| !e.kind.is_access())
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
        })
        .map_err(|e| WatchError {
            path: "-".into(),
            reason: e.to_string(),
        })?;
        let debouncer = Arc::new(Mutex::new(debouncer));
        let mut watched = Watched::default();
        watched.update(&debouncer, &self.watched_files())?;

        let rt = self.clone();
        let d = debouncer.clone();
        let task = tokio::spawn(async move {
            while let Some(paths) = rx.recv().await {
                if !paths.iter().any(|p| watched.files.contains(&absolute(p))) {
                    continue;
                }
                let result = rt.reload().await.map_err(Arc::new);
                on_reload(result);
                if let Err(e) = watched.update(&d, &rt.watched_files()) {
                    tracing::warn!(target: "mender::reload", "{e}");
                }
            }
        });
        Ok(Watcher {
            _debouncer: debouncer,
            task: task.abort_handle(),
        })
    }

    /// The configuration file and the plugin files a reload would read.
    fn watched_files(&self) -> BTreeSet<PathBuf> {
        let mut files = BTreeSet::new();
        let source = self.inner.source.lock().unwrap_or_else(|p| p.into_inner());
        if let ConfigSource::File(path) = &*source {
            files.insert(absolute(path));
        }
        drop(source);
        for entry in &self.inner.live.load().plugins {
            if let PluginSource::Path(p) = &entry.spec.source {
                files.insert(absolute(p));
            }
        }
        files
    }
}

/// The files of interest and the directories watched for them.
#[derive(Default)]
struct Watched {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Watched {
    fn update(
        &mut self,
        debouncer: &Mutex<Debouncer<RecommendedWatcher, RecommendedCache>>,
        files: &BTreeSet<PathBuf>,
    ) -> Result<(), WatchError> {
        let mut d = debouncer.lock().unwrap_or_else(|p| p.into_inner());
        for file in files {
            let Some(dir) = file.parent() else { continue };
            if self.dirs.contains(dir) {
                continue;
            }
            d.watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| WatchError {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                })?;
            self.dirs.insert(dir.to_owned());
        }
        self.files = files.clone();
        Ok(())
    }
}

/// `path` made absolute with its directory's symlinks resolved, as watch
/// events name it.
fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}
