//! What a pipeline calls: a strategy (`admit`, `on-error`) and a fallback
//! handler (`serve`), as traits over the contract's types.
//!
//! The Wasm plugins implement them (below); so can plain Rust, which is
//! how the call loop is unit-tested without a component (`call/tests.rs`)
//! and how a host could ship a native strategy. Either way the pipeline,
//! its leases and counters, and the call loop treat them alike.

use std::sync::Arc;

use crate::api::PluginFault;
use crate::config::OnFault;
use crate::plugin::bindings::wit;
use crate::plugin::{FallbackPlugin, StrategyPlugin};

/// A strategy: decides whether an attempt may start and what to do after
/// a failed one.
pub(crate) trait Strategy: Send + Sync + 'static {
    /// Its name in the configuration (names the decisions it makes).
    fn name(&self) -> &Arc<str>;
    /// What a call does when this strategy faults.
    fn on_fault(&self) -> OnFault;
    /// Which hooks it implements.
    fn hooks(&self) -> wit::Hooks;
    /// May this attempt start?
    fn admit(
        &self,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
    ) -> Result<wit::Admission, PluginFault>;
    /// What to do about this failure?
    fn on_error(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
    ) -> Result<wit::Decision, PluginFault>;
}

/// A fallback handler: answers instead of the upstream once the
/// strategies give up.
pub(crate) trait Fallback: Send + Sync + 'static {
    /// Its name in the configuration.
    fn name(&self) -> &Arc<str>;
    /// What a call does when this handler faults.
    fn on_fault(&self) -> OnFault;
    /// Whether it wants successful results recorded (a cached fallback).
    fn records_results(&self) -> bool;
    /// An answer for this failed call, if it has one.
    fn serve(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault>;
}

impl Strategy for StrategyPlugin {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn on_fault(&self) -> OnFault {
        self.on_fault
    }
    fn hooks(&self) -> wit::Hooks {
        self.hooks
    }
    fn admit(
        &self,
        service: &Arc<str>,
        call: &wit::CallInfo,
        recent: &wit::Outcomes,
    ) -> Result<wit::Admission, PluginFault> {
        StrategyPlugin::admit(self, service, call, recent)
    }
    fn on_error(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recent: &wit::Outcomes,
    ) -> Result<wit::Decision, PluginFault> {
        StrategyPlugin::on_error(self, service, event, recent)
    }
}

impl Fallback for FallbackPlugin {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn on_fault(&self) -> OnFault {
        self.on_fault
    }
    fn records_results(&self) -> bool {
        self.records_results
    }
    fn serve(
        &self,
        service: &Arc<str>,
        event: &wit::ErrorEvent,
        recorded: Option<&wit::RecordedResult>,
    ) -> Result<Option<wit::FallbackAnswer>, PluginFault> {
        FallbackPlugin::serve(self, service, event, recorded)
    }
}
