//! How a call that did not succeed ends: a strategy's fallback, a
//! fallback handler's answer, or the error with the whole history.

use std::time::Duration;

use super::context::CallState;
use super::metrics::{self, Decided, Outcome};
use crate::api::{CallError, GiveUp, Payload, Reply, ServedBy, Step};
use crate::config::OnFault;
use crate::failure::ErrorKind;
use crate::plugin::bindings::wit;

// `CallError` is what `Runtime::call` returns by value (its public type,
// with the whole history and the typed cause); boxing it here would only
// move the allocation.
#[allow(clippy::result_large_err)]
impl CallState<'_> {
    /// Answers the caller with a plugin's fallback.
    pub(super) fn answer_with<T: Payload, E>(
        &mut self,
        by: &str,
        answer: wit::FallbackAnswer,
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        match T::decode(&answer.body) {
            Ok(value) => {
                self.ended(Outcome::Fallback);
                Ok(Reply {
                    value,
                    served_by: ServedBy::Fallback {
                        plugin: by.to_owned(),
                        age: answer.age.map(Duration::from_millis),
                    },
                    history: std::mem::take(&mut self.history),
                })
            }
            Err(error) => {
                let cause = GiveUp::FallbackUndecodable {
                    plugin: by.to_owned(),
                    error,
                };
                let reason = cause.to_string();
                self.fail((cause, reason), event, last_error)
            }
        }
    }

    /// The strategies gave up (`cause`, and what it says): ask the
    /// fallback handlers, then fail.
    pub(super) async fn give_up<T: Payload, E>(
        &mut self,
        (cause, reason): (GiveUp, String),
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        let p = self.cx.pipeline.clone();
        for handler in &p.fallbacks {
            let recorded = handler
                .records_results()
                .then(|| {
                    self.cx
                        .results
                        .last(&p.service, self.result_key(), self.now_ms())
                })
                .flatten()
                .map(|(body, age)| wit::RecordedResult { body, age });
            let start = self.hook_start();
            let served = handler
                .clone()
                .serve(start, &p.service, event, recorded.as_ref())
                .await;
            metrics::hook_took(&p.service, handler.name(), "serve", start.at.elapsed());
            let decided = match &served {
                Ok(Some(_)) => Decided::Fallback,
                Ok(None) => Decided::Pass,
                Err(_) => Decided::Fault,
            };
            metrics::decision(&p.service, handler.name(), decided);
            match served {
                Ok(Some(answer)) => {
                    let by = Step::Fallback {
                        by: handler.name().to_string(),
                    };
                    self.remember(event.attempt, ErrorKind::from(event.kind), by);
                    if let Some(last) = self.history.last() {
                        tracing::info!(service = %event.service, plugin = %handler.name(), after = ?last.step, "fallback served");
                    }
                    return self.answer_with(handler.name(), answer, event, last_error);
                }
                Ok(None) => {}
                Err(fault) => {
                    if handler.on_fault() == OnFault::FailClosed {
                        let cause = GiveUp::FallbackFault {
                            first: Box::new(cause),
                            fault,
                        };
                        let reason = cause.to_string();
                        return self.fail((cause, reason), event, last_error);
                    }
                }
            }
        }
        self.fail((cause, reason), event, last_error)
    }

    /// Fails the call with `cause`, which `reason` says.
    fn fail<T, E>(
        &mut self,
        (cause, reason): (GiveUp, String),
        event: &wit::ErrorEvent,
        last_error: Option<E>,
    ) -> Result<Reply<T>, CallError<E>> {
        let kind = ErrorKind::from(event.kind);
        let outcome = if kind == ErrorKind::Rejected {
            Outcome::Rejected
        } else {
            Outcome::Failed
        };
        self.ended(outcome);
        metrics::failed(&self.cx.pipeline, kind);
        tracing::warn!(service = %event.service, operation = %event.operation, %reason, "call failed");
        Err(CallError {
            service: self.cx.pipeline.service.to_string(),
            operation: self.operation().to_owned(),
            reason,
            cause,
            kind,
            last_error,
            history: std::mem::take(&mut self.history),
        })
    }
}
