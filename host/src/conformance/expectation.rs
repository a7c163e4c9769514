//! What a step expects: the `expect = { ... }` table of a scenario file,
//! and how a report describes it. Checking an answer against it is
//! `expect.rs`.

use std::fmt;

use serde::Deserialize;

use super::scenario::{Millis, OneOrMany};

/// What an answer must be. Every key is optional; all given must hold.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Expect {
    /// `on-error`: the decision is one of these (`pass`, `retry`,
    /// `retry-on`, `fallback`, `fail`, `refresh-credentials`).
    pub decision: Option<OneOrMany>,
    /// `admit`: the answer is one of these (`allow`, `reject`, `wait`).
    pub admission: Option<OneOrMany>,
    /// The decision or admission is none of these.
    pub not: Option<OneOrMany>,
    /// `retry` or `wait`: exactly this delay.
    pub delay: Option<Millis>,
    /// `retry` or `wait`: at least this delay.
    pub delay_min: Option<Millis>,
    /// `retry` or `wait`: at most this delay.
    pub delay_max: Option<Millis>,
    /// `fail` or `reject`: the reason contains this text.
    pub reason_contains: Option<String>,
    /// `admit`: whether the answer came from a lease, without a plugin call.
    pub leased: Option<bool>,
    /// `allow`: whether the grant carries a lease.
    pub lease: Option<bool>,
    /// Routing: the `retry-on` or the `allow` sends the attempt to this
    /// upstream (an index into the scenario's `upstreams`).
    pub upstream: Option<u32>,
    /// Routing: whether the answer routes the attempt at all (`false`:
    /// a plain `retry`, or an `allow` that leaves the upstream to the
    /// host).
    pub routed: Option<bool>,
    /// `allow` (contract 0.2): whether the grant carries a permit.
    pub permit: Option<bool>,
    /// `allow`: the grant's attempt timeout is exactly this.
    pub attempt_timeout: Option<Millis>,
    /// `allow`: the grant's attempt timeout is at least this.
    pub attempt_timeout_min: Option<Millis>,
    /// `allow`: the grant's attempt timeout is at most this.
    pub attempt_timeout_max: Option<Millis>,
    /// `allow`: whether the grant carries a hedge (contract 0.2).
    pub hedge: Option<bool>,
    /// `allow`: the grant's hedge starts another attempt after exactly this.
    pub hedge_after: Option<Millis>,
    /// `allow`: the grant's hedge starts at most this many more attempts.
    pub hedge_max: Option<u32>,
    /// `serve`: whether the handler answered.
    pub served: Option<bool>,
    /// `fallback` or `serve`: exactly this body.
    pub body: Option<String>,
    /// `fallback` or `serve`: the body contains this text.
    pub body_contains: Option<String>,
    /// `fallback` or `serve`: the answer's age.
    pub age: Option<Millis>,
    /// The plugin faults (traps, times out); default false.
    #[serde(default)]
    pub fault: bool,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.fault {
            parts.push("a fault".into());
        }
        if let Some(d) = &self.decision {
            parts.push(d.0.join(" or "));
        }
        if let Some(a) = &self.admission {
            parts.push(a.0.join(" or "));
        }
        if let Some(n) = &self.not {
            parts.push(format!("anything but {}", n.0.join(" or ")));
        }
        if let Some(d) = self.delay {
            parts.push(format!("after {}ms", d.0));
        }
        match (self.delay_min, self.delay_max) {
            (Some(lo), Some(hi)) => parts.push(format!("after {}..={}ms", lo.0, hi.0)),
            (Some(lo), None) => parts.push(format!("after at least {}ms", lo.0)),
            (None, Some(hi)) => parts.push(format!("after at most {}ms", hi.0)),
            (None, None) => {}
        }
        if let Some(r) = &self.reason_contains {
            parts.push(format!("with a reason containing {r:?}"));
        }
        if let Some(l) = self.leased {
            parts.push(if l { "from a lease" } else { "from the plugin" }.into());
        }
        if let Some(l) = self.lease {
            parts.push(if l { "with a lease" } else { "with no lease" }.into());
        }
        if let Some(u) = self.upstream {
            parts.push(format!("on upstream {u}"));
        }
        if let Some(r) = self.routed {
            parts.push(if r { "routed" } else { "not routed" }.into());
        }
        if let Some(p) = self.permit {
            parts.push(if p { "with a permit" } else { "with no permit" }.into());
        }
        if let Some(t) = self.attempt_timeout {
            parts.push(format!("an attempt timeout of {}ms", t.0));
        }
        match (self.attempt_timeout_min, self.attempt_timeout_max) {
            (Some(lo), Some(hi)) => {
                parts.push(format!("an attempt timeout in {}..={}ms", lo.0, hi.0))
            }
            (Some(lo), None) => parts.push(format!("an attempt timeout of at least {}ms", lo.0)),
            (None, Some(hi)) => parts.push(format!("an attempt timeout of at most {}ms", hi.0)),
            (None, None) => {}
        }
        match self.hedge {
            Some(true) => parts.push("with a hedge".into()),
            Some(false) => parts.push("with no hedge".into()),
            None => {}
        }
        if let Some(a) = self.hedge_after {
            parts.push(format!("hedging after {}ms", a.0));
        }
        if let Some(m) = self.hedge_max {
            parts.push(format!("at most {m} hedge(s)"));
        }
        if let Some(s) = self.served {
            parts.push(if s { "an answer" } else { "no answer" }.into());
        }
        if let Some(b) = &self.body {
            parts.push(format!("body {b:?}"));
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("a body containing {b:?}"));
        }
        if let Some(a) = self.age {
            parts.push(format!("{}ms old", a.0));
        }
        if parts.is_empty() {
            return write!(f, "any answer but a fault");
        }
        write!(f, "{}", parts.join(", "))
    }
}
