//! A step's input in words, for a report line.

use super::scenario::{EventSpec, Step, Succeed, SucceedSpec};

/// The step's input, for a report line.
pub(super) fn describe_step(step: &Step) -> String {
    let event = |hook: &str, e: &EventSpec| {
        let mut s = format!("{hook} {} (attempt {}", e.kind, e.attempt.unwrap_or(1));
        if let Some(st) = e.status {
            s += &format!(", status {st}");
        }
        if let Some(r) = e.retry_after {
            s += &format!(", retry-after {}ms", r.0);
        }
        if let Some(d) = e.deadline_left {
            s += &format!(", deadline-left {}ms", d.0);
        }
        if e.idempotent == Some(false) {
            s += ", not idempotent";
        }
        for (k, v) in &e.tags {
            s += &format!(", {k}={v}");
        }
        if let Some(r) = &e.recorded {
            s += &format!(", recorded {:?} {}ms old", r.body, r.age.0);
        }
        s + ")"
    };
    if let Some(e) = &step.on_error {
        event("on-error", e)
    } else if let Some(e) = &step.serve {
        event("serve", e)
    } else if let Some(c) = &step.admit {
        let mut s = format!("admit (attempt {}", c.attempt.unwrap_or(1));
        if let Some(n) = step.in_flight {
            s += &format!(", {n} in flight");
        }
        s + ")"
    } else if let Some(n) = &step.succeed {
        let mut s = format!("{} successful attempt(s)", n.count());
        if let Succeed::Described(SucceedSpec {
            latency: Some(l), ..
        }) = n
        {
            s += &format!(" of {}ms", l.0);
        }
        if let Succeed::Described(SucceedSpec {
            permit: Some(p), ..
        }) = n
        {
            s += &format!(" under permit {p:?}");
        }
        s
    } else if let Some(k) = step.fail {
        format!("a failed attempt ({k}), not shown to the plugin")
    } else if let Some(ms) = step.advance {
        format!("advance the clock {}ms", ms.0)
    } else {
        "nothing".into()
    }
}
