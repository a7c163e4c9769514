//! The two plugin worlds, behind one trait so the pool and loader are
//! written once.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::host_api::HostState;
use crate::plugin::bindings::{fallback, strategy, wit};

/// The export interface of a world, versioned: how the host recognises
/// which world a component implements.
pub(crate) const STRATEGY_EXPORT: &str = "mender:plugin/strategy@0.1.0";
/// See [`STRATEGY_EXPORT`].
pub(crate) const FALLBACK_EXPORT: &str = "mender:plugin/fallback-handler@0.1.0";

/// A plugin world: how to instantiate it and run its `init`.
pub(crate) trait World: Sized + Send + Sync + 'static {
    /// The pre-linked, type-checked component.
    type Pre: Send + Sync + 'static;
    /// What `init` tells the host.
    type Info: Send;
    /// Type-checks the component's exports against the world.
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    /// A new instance in `store`.
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
    /// Runs the world's `init` with the plugin's config.
    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>>;
}

impl World for strategy::StrategyPlugin {
    type Pre = strategy::StrategyPluginPre<HostState>;
    type Info = wit::StrategyInfo;

    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        strategy::StrategyPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>> {
        self.mender_plugin_strategy().call_init(store, config)
    }
}

impl World for fallback::FallbackPlugin {
    type Pre = fallback::FallbackPluginPre<HostState>;
    type Info = wit::HandlerInfo;

    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        fallback::FallbackPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Self::Info, String>> {
        self.mender_plugin_fallback_handler()
            .call_init(store, config)
    }
}
