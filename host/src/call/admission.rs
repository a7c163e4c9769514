//! Admission: may the next attempt start? Strategies with an `admit` hook
//! are asked in order; a lease from an earlier `allow` answers natively,
//! without a Wasm call, which is what keeps a successful call cheap.

use std::time::Duration;

use tokio::time::Instant;

use super::context::CallState;
use super::metrics::{self, Decided, StrategyHook};
use super::min_opt;
use crate::config::OnFault;
use crate::failure::{ErrorKind, Failure};
use crate::host::clock::duration_ms;
use crate::pipeline::bulkhead::Slot;
use crate::plugin::bindings::wit;

/// `wait` answers one attempt's admission may give before the host stops
/// waiting and rejects the attempt: a limiter asking to wait forever must
/// not hold a call forever, even without a deadline.
const MAX_ADMISSION_WAITS: u32 = 16;

/// What the strategies' grants say about an attempt, combined: the
/// tightest timeout, and the first hedge and the first upstream (contract
/// 0.2's routing) in the pipeline's order.
#[derive(Clone, Copy, Default)]
pub(super) struct Granted {
    pub(super) timeout: Option<Duration>,
    pub(super) hedge: Option<wit::Hedge>,
    pub(super) upstream: Option<u32>,
}

impl Granted {
    fn add(&mut self, timeout: Option<Duration>, hedge: Option<wit::Hedge>, upstream: Option<u32>) {
        self.timeout = min_opt(self.timeout, timeout);
        self.hedge = self.hedge.or(hedge);
        self.upstream = self.upstream.or(upstream);
    }
}

/// Where [`CallState::admit`] goes on from [`CallState::admit_leased`]:
/// the first strategy whose lease did not hold, and what the leases
/// before it granted.
pub(super) type Resume = (usize, Granted);

/// Whether an attempt may start.
pub(super) enum Gate {
    /// The strategies let it start, under these grants.
    Open(Granted),
    /// Do not start: this is why.
    Closed(Failure),
}

/// An attempt the strategies and the bulkhead let start: it holds `slot`
/// (when the service has a `max-in-flight`) until it ends.
pub(super) struct Admitted {
    pub(super) granted: Granted,
    pub(super) slot: Option<Slot>,
}

impl CallState<'_> {
    /// Takes a free `max-in-flight` slot for an attempt the strategies let
    /// start, without waiting; no limit, no cost. `None`: no slot is free
    /// ([`Self::queue_for_bulkhead`] waits for one).
    pub(super) fn try_bulkhead(&self, granted: Granted) -> Option<Admitted> {
        let Some(limit) = &self.cx.pipeline.guardrails.in_flight else {
            return Some(Admitted {
                granted,
                slot: None,
            });
        };
        let slot = self.cx.pipeline.bulkhead.try_enter(limit.max)?;
        Some(Admitted {
            granted,
            slot: Some(slot),
        })
    }

    /// Waits in the `max-in-flight` queue for a slot, when
    /// [`Self::try_bulkhead`] found none free. A full queue, or no slot
    /// in time, refuses the attempt with a `rejected` failure, which the
    /// strategies then see like any other.
    pub(super) async fn queue_for_bulkhead(&self, granted: Granted) -> Result<Admitted, Failure> {
        let Some(limit) = &self.cx.pipeline.guardrails.in_flight else {
            return Ok(Admitted {
                granted,
                slot: None,
            });
        };
        match self
            .cx
            .pipeline
            .bulkhead
            .enter(limit, self.deadline_left())
            .await
        {
            Ok(slot) => Ok(Admitted {
                granted,
                slot: Some(slot),
            }),
            Err(full) => Err(Failure::new(ErrorKind::Rejected, full.to_string())
                .with_tag("rejected-by", "max-in-flight")),
        }
    }

    /// Attempt's permit from the `index`th strategy (contract 0.2),
    /// handed back with its outcome.
    fn grant_permit(&self, index: usize, permit: u64) {
        let mut permits = self.permits.lock().unwrap_or_else(|p| p.into_inner());
        permits.retain(|(i, _)| *i != index);
        permits.push((index, permit));
    }

    /// Admission by leases alone, without awaiting anything: `Ok` with
    /// the grants when every admitting strategy's lease let the attempt
    /// start (`at` being the loop's latest clock reading: no clock read
    /// here), else `Err` with where [`Self::admit`] goes on: the first
    /// strategy whose lease did not hold, and the grants so far. The happy
    /// path's admission, kept out of the call's future.
    pub(super) fn admit_leased(&self, at: Instant) -> Result<Granted, Resume> {
        let mut granted = Granted::default();
        let now = self.cx.host.ms_at(at);
        // Counted before any plugin is asked (see `pipeline/in_flight.rs`).
        self.in_flight.reserve();
        for (i, slot) in self.cx.pipeline.strategies.iter().enumerate() {
            if !slot.admits() {
                continue;
            }
            match slot.lease.try_admit(now) {
                Some(leased) => {
                    metrics::lease_used(&self.cx.pipeline, slot);
                    granted.add(leased.timeout, leased.hedge, leased.upstream);
                }
                None => return Err((i, granted)),
            }
        }
        Ok(granted)
    }

    /// Asks every admitting strategy from the `from`th on, in order,
    /// whether attempt `number` may start; `granted` is what the leases
    /// before it granted ([`Self::admit_leased`]). Leases still answer
    /// without a Wasm call. The first grant (in pipeline order) that
    /// routes the attempt decides its upstream.
    pub(super) async fn admit(&self, number: u32, (from, mut granted): Resume) -> Gate {
        let mut call: Option<wit::CallInfo> = None;
        let strategies = self.cx.pipeline.strategies.iter().enumerate().skip(from);
        for (index, slot) in strategies.filter(|(_, s)| s.admits()) {
            let mut waits = 0;
            loop {
                // One reading for the lease, the event and the hook.
                let start = self.hook_start();
                let now = self.cx.host.ms_at(start.at);
                if let Some(leased) = slot.lease.try_admit(now) {
                    metrics::lease_used(&self.cx.pipeline, slot);
                    granted.add(leased.timeout, leased.hedge, leased.upstream);
                    break;
                }
                let call = call.get_or_insert_with(|| wit::CallInfo {
                    service: self.cx.pipeline.service.to_string(),
                    operation: self.operation().to_owned(),
                    attempt: number,
                    elapsed: duration_ms(start.at.saturating_duration_since(self.started)),
                    deadline_left: start.budget.map(duration_ms),
                    idempotent: self.spec.idempotent,
                    tags: self.tags(&[]),
                });
                let recent = slot.cursor.take(&self.cx.pipeline.stats, &slot.lease);
                let mut detail = slot.take_detail(
                    &self.cx.pipeline.stats,
                    now,
                    self.cx.host.origin_ms,
                    self.in_flight.others(),
                );
                // What the attempt would use unless a grant routes it.
                let would = self.spec.upstreams.as_ref().map(|_| self.route);
                detail.upstreams = self.upstreams(granted.upstream.or(would));
                let by = slot.plugin.name();
                let service = &self.cx.pipeline.service;
                let admission = slot
                    .plugin
                    .clone()
                    .admit(start, service, call, &recent, &detail)
                    .await;
                metrics::strategy_hook_took(
                    &self.cx.pipeline,
                    slot,
                    StrategyHook::Admit,
                    start.at.elapsed(),
                );
                let checked = admission.and_then(|r| self.check_route(by, "the attempt", r));
                let (admission, permit) = match checked {
                    Ok(r) => (Ok((r.answer.admission, r.upstream)), r.answer.permit),
                    Err(fault) => (Err(fault), None),
                };
                let decided = match &admission {
                    Ok((wit::Admission::Allow(_), _)) => Decided::Allow,
                    Ok((wit::Admission::Reject(_), _)) => Decided::Reject,
                    Ok((wit::Admission::Wait(_), _)) => Decided::Wait,
                    Err(_) => Decided::Fault,
                };
                metrics::strategy_decided(&self.cx.pipeline, slot, decided);
                match admission {
                    Ok((wit::Admission::Allow(grant), routed)) => {
                        if grant.lease.as_ref().is_some_and(|l| l.ttl > 0) {
                            metrics::lease_granted(&self.cx.pipeline, slot);
                        }
                        slot.lease.grant(&grant, routed, now);
                        if let Some(permit) = permit {
                            self.grant_permit(index, permit);
                        }
                        let timeout = grant.attempt_timeout.map(Duration::from_millis);
                        granted.add(timeout, grant.hedge, routed);
                        break;
                    }
                    Ok((wit::Admission::Reject(r), _)) => {
                        let mut f = Failure::new(ErrorKind::Rejected, r.reason)
                            .with_tag("rejected-by", &**by);
                        f.retry_after = r.retry_after.map(Duration::from_millis);
                        return Gate::Closed(f);
                    }
                    Ok((wit::Admission::Wait(ms), _)) => {
                        let wait =
                            Duration::from_millis(ms).min(self.cx.pipeline.guardrails.max_delay);
                        waits += 1;
                        if waits > MAX_ADMISSION_WAITS
                            || self.deadline_left().is_some_and(|left| wait >= left)
                        {
                            return Gate::Closed(
                                Failure::new(ErrorKind::Rejected, format!("{by} kept the attempt waiting past the deadline or {MAX_ADMISSION_WAITS} waits"))
                                    .with_tag("rejected-by", &**by),
                            );
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Err(fault) => match slot.plugin.on_fault() {
                        OnFault::FailOpen => break,
                        OnFault::FailClosed => {
                            return Gate::Closed(
                                Failure::new(ErrorKind::Rejected, fault.to_string())
                                    .with_tag("rejected-by", &**by),
                            );
                        }
                    },
                }
            }
        }
        Gate::Open(granted)
    }
}
