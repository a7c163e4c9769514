//! The plugin worlds of every contract version, behind one trait so the
//! pool and loader are written once, and the adapter that lets the host
//! call a 0.1 and a 0.2 plugin alike.
//!
//! A component's exports say which world and which contract it
//! implements ([`Contract::of_export`]). Its bindings are an enum over the
//! versions; each hook converts the host's vocabulary (`wit`, the 0.1
//! records) into what that version takes and its answer back. A 0.1
//! plugin is called with exactly the arguments it always was.

use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Store};

use super::WorldKind;
use super::current::{AdmitAnswer, RecentDetail, StrategyInfo};
use super::host_api::HostState;
use crate::plugin::bindings::{Routed, v0_1, v0_2, wit};

/// A contract version the host implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    /// `mender:plugin@0.1.0`: hooks take every string inline.
    V0_1,
    /// `mender:plugin@0.2.0` (unreleased until #19 closes): hooks take
    /// scalars; strings through the `current` interface.
    V0_2,
}

impl Contract {
    /// Every version, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];

    /// The package version, as in `mender:plugin@<version>`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// The export of the strategy world in this version.
    pub(crate) fn strategy_export(self) -> &'static str {
        match self {
            Contract::V0_1 => "mender:plugin/strategy@0.1.0",
            Contract::V0_2 => "mender:plugin/strategy@0.2.0",
        }
    }

    /// The export of the fallback world in this version.
    pub(crate) fn fallback_export(self) -> &'static str {
        match self {
            Contract::V0_1 => "mender:plugin/fallback-handler@0.1.0",
            Contract::V0_2 => "mender:plugin/fallback-handler@0.2.0",
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mender:plugin@{}", self.version())
    }
}

/// A plugin world: how to instantiate it and run its `init`.
pub(crate) trait World: Sized + Send + Sync + 'static {
    /// The pre-linked, type-checked component.
    type Pre: Send + Sync + 'static;
    /// What `init` tells the host.
    type Info: Send;
    /// Type-checks the component's exports against the world of `contract`.
    fn pre(pre: InstancePre<HostState>, contract: Contract) -> wasmtime::Result<Self::Pre>;
    /// A new instance in `store`.
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
    /// Runs the world's `init` with the plugin's config.
    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>>;
}

/// A strategy instance of either contract.
pub(crate) enum StrategyWorld {
    V0_1(v0_1::strategy::StrategyPlugin),
    V0_2(v0_2::strategy::StrategyPlugin),
}

/// A pre-linked strategy component of either contract.
pub(crate) enum StrategyPre {
    V0_1(v0_1::strategy::StrategyPluginPre<HostState>),
    V0_2(v0_2::strategy::StrategyPluginPre<HostState>),
}

impl World for StrategyWorld {
    type Pre = StrategyPre;
    type Info = StrategyInfo;

    fn pre(pre: InstancePre<HostState>, contract: Contract) -> wasmtime::Result<Self::Pre> {
        Ok(match contract {
            Contract::V0_1 => StrategyPre::V0_1(v0_1::strategy::StrategyPluginPre::new(pre)?),
            Contract::V0_2 => StrategyPre::V0_2(v0_2::strategy::StrategyPluginPre::new(pre)?),
        })
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        Ok(match pre {
            StrategyPre::V0_1(p) => StrategyWorld::V0_1(p.instantiate(store)?),
            StrategyPre::V0_2(p) => StrategyWorld::V0_2(p.instantiate(store)?),
        })
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>> {
        Ok(match self {
            StrategyWorld::V0_1(b) => b
                .mender_plugin_strategy()
                .call_init(store, config)?
                .map(StrategyInfo::from),
            StrategyWorld::V0_2(b) => b
                .mender_plugin_strategy()
                .call_init(store, config)?
                .map(v0_2::strategy_info),
        })
    }
}

impl StrategyWorld {
    /// `admit`, in the plugin's contract.
    pub(crate) fn admit(
        &self,
        store: &mut Store<HostState>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> wasmtime::Result<Routed<AdmitAnswer>> {
        match self {
            StrategyWorld::V0_1(b) => {
                let admission = b.mender_plugin_strategy().call_admit(store, call, recent)?;
                Ok(AdmitAnswer::from(wit::Admission::from(admission)).into())
            }
            StrategyWorld::V0_2(b) => {
                store.data_mut().current.set_call(call, recent, detail);
                let answer = b.mender_plugin_strategy().call_admit(
                    store,
                    v0_2::call_info(call),
                    v0_2::outcomes(recent),
                )?;
                Ok(v0_2::admission(answer))
            }
        }
    }

    /// `on-error`, in the plugin's contract.
    pub(crate) fn on_error(
        &self,
        store: &mut Store<HostState>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
        detail: &RecentDetail,
    ) -> wasmtime::Result<Routed<wit::Decision>> {
        match self {
            StrategyWorld::V0_1(b) => Ok(b
                .mender_plugin_strategy()
                .call_on_error(store, event, recent)?
                .into()),
            StrategyWorld::V0_2(b) => {
                store
                    .data_mut()
                    .current
                    .set_event(event, Some((recent, detail)));
                let answer = b.mender_plugin_strategy().call_on_error(
                    store,
                    v0_2::event(event),
                    v0_2::outcomes(recent),
                )?;
                Ok(v0_2::decision(answer))
            }
        }
    }
}

/// A fallback handler instance of either contract.
pub(crate) enum FallbackWorld {
    V0_1(v0_1::fallback::FallbackPlugin),
    V0_2(v0_2::fallback::FallbackPlugin),
}

/// A pre-linked fallback component of either contract.
pub(crate) enum FallbackPre {
    V0_1(v0_1::fallback::FallbackPluginPre<HostState>),
    V0_2(v0_2::fallback::FallbackPluginPre<HostState>),
}

impl World for FallbackWorld {
    type Pre = FallbackPre;
    type Info = wit::HandlerInfo;

    fn pre(pre: InstancePre<HostState>, contract: Contract) -> wasmtime::Result<Self::Pre> {
        Ok(match contract {
            Contract::V0_1 => FallbackPre::V0_1(v0_1::fallback::FallbackPluginPre::new(pre)?),
            Contract::V0_2 => FallbackPre::V0_2(v0_2::fallback::FallbackPluginPre::new(pre)?),
        })
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        Ok(match pre {
            FallbackPre::V0_1(p) => FallbackWorld::V0_1(p.instantiate(store)?),
            FallbackPre::V0_2(p) => FallbackWorld::V0_2(p.instantiate(store)?),
        })
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>> {
        Ok(match self {
            FallbackWorld::V0_1(b) => b
                .mender_plugin_fallback_handler()
                .call_init(store, config)?,
            FallbackWorld::V0_2(b) => b
                .mender_plugin_fallback_handler()
                .call_init(store, config)?
                .map(v0_2::handler_info),
        })
    }
}

impl FallbackWorld {
    /// `serve`, in the plugin's contract.
    pub(crate) fn serve(
        &self,
        store: &mut Store<HostState>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> wasmtime::Result<Option<wit::FallbackAnswer>> {
        match self {
            FallbackWorld::V0_1(b) => b
                .mender_plugin_fallback_handler()
                .call_serve(store, event, recorded),
            FallbackWorld::V0_2(b) => {
                store.data_mut().current.set_event(event, None);
                let recorded = recorded.map(v0_2::recorded);
                let answer = b.mender_plugin_fallback_handler().call_serve(
                    store,
                    v0_2::event(event),
                    recorded.as_ref(),
                )?;
                Ok(answer.map(v0_2::answer))
            }
        }
    }
}

/// Which world, of which contract version, a component implements,
/// judged by its exports.
pub(crate) fn world_of(
    engine: &Engine,
    component: &Component,
) -> Result<(WorldKind, Contract), String> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let has = |e: &str| exports.iter().any(|x| x == e);
    let mut found = Contract::ALL.iter().flat_map(|&c| {
        [
            has(c.strategy_export()).then_some((WorldKind::Strategy, c)),
            has(c.fallback_export()).then_some((WorldKind::Fallback, c)),
        ]
        .into_iter()
        .flatten()
    });
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => Err("exports more than one of the strategy and fallback-handler interfaces (of one or several contract versions); a plugin implements one world".into()),
        (None, _) => {
            let other_version = exports
                .iter()
                .find(|e| e.starts_with("mender:plugin/"))
                .map(|e| format!(" (it exports `{e}`: built against a contract version this host does not implement)"))
                .unwrap_or_default();
            let expected: Vec<String> = Contract::ALL
                .iter()
                .flat_map(|c| [c.strategy_export(), c.fallback_export()])
                .map(|e| format!("`{e}`"))
                .collect();
            Err(format!(
                "exports none of {}{other_version}; exports: [{}]",
                expected.join(", "),
                exports.join(", ")
            ))
        }
    }
}
