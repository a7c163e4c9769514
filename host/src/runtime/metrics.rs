//! The runtime's families that are read from its own counts when scraped
//! ([`Runtime::record_metrics`]), as the gateway's per-upstream ones are:
//! each plugin's sandbox faults and quarantines, the serving generation
//! and the reloads, and each shared state backend's health. The same
//! numbers as `Runtime::plugins`, `reload_status` and `state_status`, so a
//! scrape and the status views never disagree.
//!
//! Labels: a plugin's name from the config; a state backend's kind and
//! target (its URL without the password), one per configured backend.

use super::Runtime;

/// Describes every family the core emits to the installed recorder, so
/// the exposition carries a `# HELP` line for each. Call it once, after
/// installing the recorder.
pub fn describe_metrics() {
    use ::metrics::{describe_counter, describe_gauge};
    crate::call::describe_metrics();
    describe_counter!(
        "mender_sandbox_faults_total",
        "Hook calls of a plugin that trapped, ran out of fuel or time, or answered past the limits"
    );
    describe_counter!(
        "mender_sandbox_quarantines_total",
        "Times a plugin was quarantined after repeated faults"
    );
    describe_gauge!(
        "mender_sandbox_quarantined",
        "1 while a plugin's quarantine is in force (its on-fault mode applies), else 0"
    );
    describe_counter!(
        "mender_sandbox_skipped_total",
        "Hook calls not made because the plugin was quarantined"
    );
    describe_gauge!(
        "mender_reload_generation",
        "The configuration generation serving new calls (1: as started)"
    );
    describe_counter!(
        "mender_reloads_total",
        "Reloads by result: applied, or failed (refused whole; the previous generation kept serving)"
    );
    describe_gauge!(
        "mender_state_shared",
        "1 while a shared state backend (Redis) serves state, 0 while the host serves it locally"
    );
    describe_counter!(
        "mender_state_outages_total",
        "Times a shared state backend became unreachable"
    );
    describe_counter!(
        "mender_state_local_ops_total",
        "State operations served from local memory because the shared backend was down"
    );
}

impl Runtime {
    /// Sets the families read from the runtime's own counts (see the
    /// module doc) on the installed recorder; call it before each scrape.
    pub fn record_metrics(&self) {
        use ::metrics::{counter, gauge};
        for p in self.plugins() {
            let plugin = p.name;
            counter!("mender_sandbox_faults_total", "plugin" => plugin.clone()).absolute(p.faults);
            counter!("mender_sandbox_quarantines_total", "plugin" => plugin.clone())
                .absolute(p.quarantines);
            counter!("mender_sandbox_skipped_total", "plugin" => plugin.clone())
                .absolute(p.skipped);
            let quarantined = if p.quarantined_for_ms.is_some() {
                1.0
            } else {
                0.0
            };
            gauge!("mender_sandbox_quarantined", "plugin" => plugin).set(quarantined);
        }
        let reload = self.reload_status();
        gauge!("mender_reload_generation").set(reload.generation as f64);
        counter!("mender_reloads_total", "result" => "applied").absolute(reload.applied);
        counter!("mender_reloads_total", "result" => "failed").absolute(reload.failed);
        for s in self.state_status() {
            let labels = [
                ("backend", s.backend.to_owned()),
                ("target", s.target.clone()),
            ];
            gauge!("mender_state_shared", &labels).set(if s.shared { 1.0 } else { 0.0 });
            counter!("mender_state_outages_total", &labels).absolute(s.outages);
            counter!("mender_state_local_ops_total", &labels).absolute(s.fallback_ops);
        }
    }
}
