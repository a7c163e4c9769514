//! A trial start, for `mender check FILE.wasm`: does this component get
//! through instantiation and `init` under the sandbox's limits, as loading
//! it would? A component that links but can never start (a start function
//! that loops, a 4 GiB minimum memory) must not be reported as fine.

use std::sync::Arc;

use super::cache::ArtifactCache;
use super::pool::REJECTED_CONFIG;
use super::{LoadContext, Sandbox, compile, instantiate, link};
use crate::config::{Limits, OnFault, PluginSource, PluginSpec};
use crate::host::HostShared;
use crate::host::state::MemoryState;

/// How a trial start went, when the component started at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrialStart {
    /// It instantiated, and its `init` accepted the empty config (`{}`).
    Started,
    /// It instantiated and ran `init`, which refused the empty config with
    /// this message: normal for a plugin that needs settings, which only a
    /// `mender.toml` can give.
    NeedsConfig(String),
}

/// Instantiates `bytes` and runs `init` with an empty config under
/// `limits`, on a scratch host (its own state, no directory grants, a fixed
/// random seed). `Err` says why it cannot start: not a plugin component, a
/// trap or timeout while instantiating or in `init`, a limit exceeded.
pub fn trial_start(bytes: &[u8], limits: &Limits) -> Result<TrialStart, String> {
    // With its epoch ticker: deadlines are counted in epochs, and without
    // the ticker a looping start function would never be stopped.
    let Sandbox { engine, linker } = Sandbox::new().map_err(|e| format!("{e:#}"))?;
    let component = compile(&engine, bytes)?;
    let spec = PluginSpec {
        name: "checked".into(),
        source: PluginSource::Path("<checked>".into()),
        on_fault: OnFault::default(),
        limits: limits.clone(),
        dirs: Vec::new(),
        config_json: "{}".into(),
        location: "mender check".into(),
    };
    let cache = ArtifactCache::new(None, &engine);
    let cx = LoadContext {
        engine: &engine,
        linker: &linker,
        cache: &cache,
    };
    let shared = Arc::new(HostShared::live(
        Arc::new(MemoryState::default()),
        Some(0),
        false,
    ));
    let prepared = link(&cx, &spec, "<checked>", &component).map_err(|e| e.reason)?;
    match instantiate(&engine, &shared, &spec, &prepared) {
        Ok(_) => Ok(TrialStart::Started),
        Err(e) => match e.reason.strip_prefix(REJECTED_CONFIG) {
            Some(message) => Ok(TrialStart::NeedsConfig(message.to_owned())),
            None => Err(e.reason),
        },
    }
}
