//! Supervision of one plugin's hook calls: quarantine, fault counting, and
//! checks on what a plugin answers. Both plugin worlds go through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::quarantine::{FaultEffect, Quarantine};
use crate::api::PluginFault;
use crate::config::Limits;
use crate::host::HostShared;
use crate::plugin::HookStart;
use crate::plugin::bindings::wit;
use crate::plugin::current::AdmitAnswer;

/// Counts and guards the hook calls of one plugin.
pub(crate) struct Supervisor {
    name: Arc<str>,
    shared: Arc<HostShared>,
    max_answer_bytes: usize,
    pub(crate) quarantine: Quarantine,
    calls: AtomicU64,
    faults: AtomicU64,
    skipped: AtomicU64,
}

/// A plugin's counters, for status views.
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) faults: u64,
    pub(crate) skipped: u64,
    pub(crate) quarantines: u64,
    pub(crate) quarantined_until_ms: Option<u64>,
}

impl Supervisor {
    pub(crate) fn new(name: Arc<str>, shared: Arc<HostShared>, limits: &Limits) -> Self {
        Supervisor {
            name,
            shared,
            max_answer_bytes: limits.max_answer_bytes,
            quarantine: Quarantine::new(limits.quarantine.clone()),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether the plugin is benched for a hook call starting at `start`.
    pub(crate) fn quarantined_at(&self, start: HookStart) -> bool {
        self.quarantine
            .active(self.shared.ms_at(start.at))
            .is_some()
    }

    /// Runs a hook call starting at `start` unless the plugin is
    /// quarantined, and turns an answer that breaks the limits into a
    /// fault.
    pub(crate) fn run<R: Answer>(
        &self,
        start: HookStart,
        call: impl FnOnce() -> Result<R, PluginFault>,
    ) -> Result<R, PluginFault> {
        let now = self.shared.ms_at(start.at);
        if let Some(until) = self.quarantine.active(now) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Err(PluginFault {
                plugin: self.name.to_string(),
                reason: format!("is quarantined for {} ms more", until - now),
                cut_off: false,
            });
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = call().and_then(|answer| match answer.oversized(self.max_answer_bytes) {
            Some(what) => Err(PluginFault {
                plugin: self.name.to_string(),
                reason: format!(
                    "answered {what}, over the limit of {} bytes",
                    self.max_answer_bytes
                ),
                cut_off: false,
            }),
            None => Ok(answer.escaped()),
        });
        // A trap's message carries the plugin's own text (a panic message):
        // escaped like everything else a plugin writes.
        let result = result.map_err(|mut fault| {
            fault.reason = crate::escape::escape_owned(fault.reason);
            fault
        });
        if let Err(fault) = &result {
            self.faults.fetch_add(1, Ordering::Relaxed);
            if fault.cut_off {
                // The call ran out of time, not the plugin: no quarantine.
                tracing::debug!(target: "mender::plugin", plugin = %self.name, "{fault}");
                return result;
            }
            tracing::warn!(target: "mender::plugin", plugin = %self.name, "{fault}");
            if let FaultEffect::Quarantined { faults, until_ms } =
                self.quarantine.record_fault(self.shared.now_ms())
            {
                tracing::error!(
                    target: "mender::plugin",
                    plugin = %self.name,
                    "plugin `{}` quarantined for {} ms after {faults} faults; its on-fault mode applies meanwhile",
                    self.name,
                    until_ms.saturating_sub(now),
                );
            }
        }
        result
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            calls: self.calls.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            quarantines: self.quarantine.episodes.load(Ordering::Relaxed),
            quarantined_until_ms: self.quarantine.active(self.shared.now_ms()),
        }
    }
}

/// A hook's answer, checked for size: text a plugin hands the host (a
/// fallback body, a reason) must stay under the limit, or a plugin could
/// push arbitrary amounts of memory into the agent.
pub(crate) trait Answer: Sized {
    /// What is too large, said for people, if anything.
    fn oversized(&self, limit: usize) -> Option<String>;

    /// The answer with the text that reaches logs and errors (reasons)
    /// escaped (see [`crate::escape`]). A fallback body is the caller's
    /// data and is left as it is.
    fn escaped(self) -> Self {
        self
    }
}

fn check(what: &str, text: &str, limit: usize) -> Option<String> {
    (text.len() > limit).then(|| format!("a {what} of {} bytes", text.len()))
}

impl Answer for wit::Decision {
    fn oversized(&self, limit: usize) -> Option<String> {
        match self {
            wit::Decision::Fallback(a) => check("fallback body", &a.body, limit),
            wit::Decision::Fail(reason) => check("failure reason", reason, limit),
            _ => None,
        }
    }

    fn escaped(self) -> Self {
        match self {
            wit::Decision::Fail(reason) => wit::Decision::Fail(crate::escape::escape_owned(reason)),
            other => other,
        }
    }
}

impl<T: Answer> Answer for super::bindings::Routed<T> {
    fn oversized(&self, limit: usize) -> Option<String> {
        self.answer.oversized(limit)
    }

    fn escaped(mut self) -> Self {
        self.answer = self.answer.escaped();
        self
    }
}

impl Answer for wit::Admission {
    fn oversized(&self, limit: usize) -> Option<String> {
        match self {
            wit::Admission::Reject(r) => check("rejection reason", &r.reason, limit),
            _ => None,
        }
    }

    fn escaped(self) -> Self {
        match self {
            wit::Admission::Reject(mut r) => {
                r.reason = crate::escape::escape_owned(r.reason);
                wit::Admission::Reject(r)
            }
            other => other,
        }
    }
}

impl Answer for AdmitAnswer {
    fn oversized(&self, limit: usize) -> Option<String> {
        self.admission.oversized(limit)
    }

    fn escaped(self) -> Self {
        AdmitAnswer {
            admission: self.admission.escaped(),
            permit: self.permit,
        }
    }
}

impl Answer for Option<wit::FallbackAnswer> {
    fn oversized(&self, limit: usize) -> Option<String> {
        self.as_ref()
            .and_then(|a| check("fallback body", &a.body, limit))
    }
}
