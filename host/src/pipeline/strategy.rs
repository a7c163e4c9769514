//! What a pipeline calls: a strategy (`admit`, `on-error`) and a fallback
//! handler (`serve`), as traits over the contract's types.
//!
//! The Wasm plugins implement them (below); so can plain Rust, which is
//! how the call loop is unit-tested without a component (`call/tests.rs`)
//! and how a host could ship a native strategy. Either way the pipeline,
//! its leases and counters, and the call loop treat them alike.
//!
//! Hooks are asynchronous and take when they start and the time the call
//! has left ([`HookStart`]): a Wasm plugin answers inline when a warm
//! instance is at hand, and makes a new one off the runtime's threads,
//! never past the call's deadline.

use crate::api::{BoxFuture, PluginFault};
use crate::config::OnFault;
use crate::plugin::bindings::{Routed, wit};
use crate::plugin::current::{AdmitAnswer, RecentDetail};
use crate::plugin::{FallbackPlugin, HookStart, StrategyPlugin};
use std::sync::Arc;

/// A strategy: decides whether an attempt may start and what to do after
/// a failed one.
pub(crate) trait Strategy: Send + Sync + 'static {
    /// Its name in the configuration (names the decisions it makes).
    fn name(&self) -> &Arc<str>;
    /// What a call does when this strategy faults.
    fn on_fault(&self) -> OnFault;
    /// Which hooks it implements.
    fn hooks(&self) -> wit::Hooks;
    /// Whether it reads contract 0.2's detail of `recent` (the host takes
    /// the report only then).
    fn reads_detail(&self) -> bool {
        false
    }
    /// Successes slower than this (ms) are counted as its slow calls
    /// (contract 0.2's `strategy-info.slow-call-threshold`).
    fn slow_call_threshold(&self) -> Option<u64> {
        None
    }
    /// May this attempt start? Within `start.budget`, if the call has a
    /// deadline.
    /// `detail` is empty unless [`reads_detail`](Self::reads_detail).
    fn admit<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        call: &'a wit::CallInfo,
        recent: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<AdmitAnswer>, PluginFault>>;
    /// What to do about this failure? Within `start.budget`, likewise.
    fn on_error<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        event: &'a wit::ErrorEvent,
        recent: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<wit::Decision>, PluginFault>>;
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
    /// An answer for this failed call, if it has one, within
    /// `start.budget`.
    fn serve<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        event: &'a wit::ErrorEvent,
        recorded: Option<&'a wit::RecordedResult>,
    ) -> BoxFuture<'a, Result<Option<wit::FallbackAnswer>, PluginFault>>;
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
    fn reads_detail(&self) -> bool {
        self.contract >= crate::plugin::Contract::V0_2
    }
    fn slow_call_threshold(&self) -> Option<u64> {
        self.slow_call_threshold
    }
    fn admit<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        call: &'a wit::CallInfo,
        recent: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<AdmitAnswer>, PluginFault>> {
        Box::pin(async move {
            self.admit_within(start, service, call, recent, detail)
                .await
        })
    }
    fn on_error<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        event: &'a wit::ErrorEvent,
        recent: &'a wit::Outcomes,
        detail: &'a RecentDetail,
    ) -> BoxFuture<'a, Result<Routed<wit::Decision>, PluginFault>> {
        Box::pin(async move {
            self.on_error_within(start, service, event, recent, detail)
                .await
        })
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
    fn serve<'a>(
        self: Arc<Self>,
        start: HookStart,
        service: &'a Arc<str>,
        event: &'a wit::ErrorEvent,
        recorded: Option<&'a wit::RecordedResult>,
    ) -> BoxFuture<'a, Result<Option<wit::FallbackAnswer>, PluginFault>> {
        Box::pin(async move { self.serve_within(start, service, event, recorded).await })
    }
}
