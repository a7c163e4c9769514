//! What a plugin answered in a step, and whether that meets the step's
//! expectation. Mismatches are said in words, for the report.

use std::fmt;

use super::scenario::{Expect, OneOrMany};
use crate::plugin::bindings::wit;

/// What a step produced.
pub(crate) enum Observed {
    /// The step has no answer (clock, outcome counting).
    Nothing,
    /// `on-error` answered; with the upstream a `retry-on` routes to.
    Decision(wit::Decision, Option<u32>),
    /// `admit` answered; with the upstream an `allow` routes to, and the
    /// permit its grant named (contract 0.2).
    Admission(wit::Admission, Option<u32>, Option<u64>),
    /// A lease from an earlier `allow` admitted the attempt (on the
    /// upstream its grant routed to); the plugin was not called.
    Leased(Option<u32>),
    /// `serve` answered.
    Served(Option<wit::FallbackAnswer>),
    /// The plugin does not declare this hook, so the host never calls it
    /// (`pass` for `on-error`, `allow` for `admit`).
    Skipped(&'static str),
    /// The hook does not exist in the plugin's world.
    WrongWorld(&'static str, &'static str),
    /// The plugin trapped, timed out or broke a sandbox limit.
    Fault(String),
}

impl Observed {
    /// The answer's name, as scenario files spell it.
    fn name(&self) -> Option<&'static str> {
        Some(match self {
            Observed::Decision(d, route) => match d {
                wit::Decision::Pass => "pass",
                wit::Decision::Retry(_) if route.is_some() => "retry-on",
                wit::Decision::Retry(_) => "retry",
                wit::Decision::Fallback(_) => "fallback",
                wit::Decision::Fail(_) => "fail",
                wit::Decision::RefreshCredentials => "refresh-credentials",
            },
            Observed::Admission(a, ..) => match a {
                wit::Admission::Allow(_) => "allow",
                wit::Admission::Reject(_) => "reject",
                wit::Admission::Wait(_) => "wait",
            },
            Observed::Leased(_) => "allow",
            Observed::Skipped("on-error") => "pass",
            Observed::Skipped(_) => "allow",
            _ => return None,
        })
    }

    fn delay(&self) -> Option<u64> {
        match self {
            Observed::Decision(wit::Decision::Retry(ms), _)
            | Observed::Admission(wit::Admission::Wait(ms), ..) => Some(*ms),
            _ => None,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Observed::Decision(wit::Decision::Fail(r), _) => Some(r),
            Observed::Admission(wit::Admission::Reject(r), ..) => Some(&r.reason),
            _ => None,
        }
    }

    fn answer(&self) -> Option<&wit::FallbackAnswer> {
        match self {
            Observed::Decision(wit::Decision::Fallback(a), _) | Observed::Served(Some(a)) => {
                Some(a)
            }
            _ => None,
        }
    }

    /// Routing: the upstream a `retry-on` or an `allow` sends the attempt
    /// to, if the answer routes it.
    fn upstream(&self) -> Option<u32> {
        match self {
            Observed::Decision(_, u) | Observed::Admission(_, u, _) | Observed::Leased(u) => *u,
            _ => None,
        }
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answer = |f: &mut fmt::Formatter<'_>, a: &wit::FallbackAnswer| {
            write!(f, "{:?}", clip(&a.body))?;
            match a.age {
                Some(age) => write!(f, ", {age}ms old"),
                None => Ok(()),
            }
        };
        match self {
            Observed::Nothing => write!(f, "(no answer: the step only changes the host)"),
            Observed::Decision(d, route) => match d {
                wit::Decision::Pass => write!(f, "pass"),
                wit::Decision::Retry(ms) => match route {
                    Some(u) => write!(f, "retry-on upstream {u} after {ms}ms"),
                    None => write!(f, "retry after {ms}ms"),
                },
                wit::Decision::Fallback(a) => {
                    write!(f, "fallback ")?;
                    answer(f, a)
                }
                wit::Decision::Fail(r) => write!(f, "fail {:?}", clip(r)),
                wit::Decision::RefreshCredentials => write!(f, "refresh-credentials"),
            },
            Observed::Admission(a, route, permit) => match a {
                wit::Admission::Allow(g) => {
                    write!(f, "allow")?;
                    if let Some(u) = route {
                        write!(f, " on upstream {u}")?;
                    }
                    if let Some(p) = permit {
                        write!(f, ", permit {p}")?;
                    }
                    if let Some(t) = g.attempt_timeout {
                        write!(f, ", attempt timeout {t}ms")?;
                    }
                    match &g.lease {
                        Some(l) => write!(
                            f,
                            ", lease {}ms{}{}",
                            l.ttl,
                            l.max_attempts
                                .map(|n| format!(" / {n} attempts"))
                                .unwrap_or_default(),
                            if l.until_failure {
                                " until failure"
                            } else {
                                ""
                            }
                        ),
                        None => write!(f, ", no lease"),
                    }?;
                    match &g.hedge {
                        Some(h) => write!(f, ", hedge after {}ms / {} more", h.after, h.max),
                        None => Ok(()),
                    }
                }
                wit::Admission::Reject(r) => {
                    write!(f, "reject {:?}", clip(&r.reason))?;
                    match r.retry_after {
                        Some(ms) => write!(f, ", retry after {ms}ms"),
                        None => Ok(()),
                    }
                }
                wit::Admission::Wait(ms) => write!(f, "wait {ms}ms"),
            },
            Observed::Leased(route) => {
                write!(f, "allow (from a lease; the plugin was not called)")?;
                match route {
                    Some(u) => write!(f, " on upstream {u}"),
                    None => Ok(()),
                }
            }
            Observed::Served(None) => write!(f, "no answer (none)"),
            Observed::Served(Some(a)) => {
                write!(f, "answer ")?;
                answer(f, a)
            }
            Observed::Skipped(hook) => write!(
                f,
                "{} (the plugin does not declare `{hook}`, so the host never calls it)",
                self.name().unwrap_or("?")
            ),
            Observed::WrongWorld(hook, is) => {
                write!(f, "nothing: `{hook}` does not exist, the plugin is a {is}")
            }
            Observed::Fault(reason) => write!(f, "a fault: {reason}"),
        }
    }
}

/// Long bodies and reasons are cut in reports.
fn clip(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Whether `got` meets `want`; `Err` says how it does not.
pub(crate) fn check(want: &Expect, got: &Observed) -> Result<(), String> {
    match (got, want.fault) {
        (Observed::WrongWorld(..), _) => {
            return Err("the step does not fit the plugin's world".into());
        }
        (Observed::Fault(_), false) => return Err("the plugin faulted".into()),
        (Observed::Fault(_), true) => return Ok(()),
        (_, true) => return Err("expected a fault, but the plugin answered".into()),
        _ => {}
    }
    let name = got.name();
    let is_one_of = |list: &OneOrMany, what: &str| match name {
        Some(n) if list.0.iter().any(|x| x == n) => Ok(()),
        Some(n) => Err(format!(
            "{what} is `{n}`, not one of {}",
            list.0.join(" / ")
        )),
        None => Err(format!("there is no {what} to check")),
    };
    if let Some(list) = &want.decision {
        if !matches!(got, Observed::Decision(..) | Observed::Skipped("on-error")) {
            return Err("expected an on-error decision".into());
        }
        is_one_of(list, "the decision")?;
    }
    if let Some(list) = &want.admission {
        if !matches!(
            got,
            Observed::Admission(..) | Observed::Leased(_) | Observed::Skipped("admit")
        ) {
            return Err("expected an admission answer".into());
        }
        is_one_of(list, "the admission")?;
    }
    if let Some(list) = &want.not
        && let Some(n) = name
        && list.0.iter().any(|x| x == n)
    {
        return Err(format!("the answer is `{n}`, which the scenario rules out"));
    }
    if want.delay.is_some() || want.delay_min.is_some() || want.delay_max.is_some() {
        let Some(d) = got.delay() else {
            return Err("the answer carries no delay".into());
        };
        if let Some(x) = want.delay
            && d != x.0
        {
            return Err(format!("the delay is {d}ms, not {}ms", x.0));
        }
        if let Some(lo) = want.delay_min
            && d < lo.0
        {
            return Err(format!("the delay {d}ms is under the minimum {}ms", lo.0));
        }
        if let Some(hi) = want.delay_max
            && d > hi.0
        {
            return Err(format!("the delay {d}ms is over the maximum {}ms", hi.0));
        }
    }
    if let Some(text) = &want.reason_contains {
        match got.reason() {
            Some(r) if r.contains(text.as_str()) => {}
            Some(_) => return Err(format!("the reason does not contain {text:?}")),
            None => return Err("the answer carries no reason".into()),
        }
    }
    if let Some(leased) = want.leased
        && leased != matches!(got, Observed::Leased(_))
    {
        return Err(if leased {
            "expected the attempt to be admitted by a lease, without a plugin call".into()
        } else {
            "expected the plugin to be asked, but a lease answered".into()
        });
    }
    if let Some(lease) = want.lease {
        let has = match got {
            Observed::Admission(wit::Admission::Allow(g), ..) => g.lease.is_some(),
            _ => return Err("expected an `allow` from the plugin".into()),
        };
        if has != lease {
            return Err(format!(
                "the grant {} a lease",
                if has { "carries" } else { "carries no" }
            ));
        }
    }
    if let Some(want_routed) = want.routed
        && want_routed != got.upstream().is_some()
    {
        return Err(if want_routed {
            "expected the answer to route the attempt to an upstream, but it does not".into()
        } else {
            format!(
                "expected no route, but the answer routes to upstream {}",
                got.upstream().unwrap_or_default()
            )
        });
    }
    if let Some(want_upstream) = want.upstream {
        match got.upstream() {
            Some(u) if u == want_upstream => {}
            Some(u) => {
                return Err(format!(
                    "the answer routes to upstream {u}, not {want_upstream}"
                ));
            }
            None => {
                return Err(format!(
                    "the answer routes nowhere, not to upstream {want_upstream}"
                ));
            }
        }
    }
    if let Some(want_permit) = want.permit {
        let has = match got {
            Observed::Admission(wit::Admission::Allow(_), _, permit) => permit.is_some(),
            _ => return Err("expected an `allow` from the plugin".into()),
        };
        if has != want_permit {
            return Err(format!(
                "the grant {} a permit",
                if has { "carries" } else { "carries no" }
            ));
        }
    }
    if want.attempt_timeout.is_some()
        || want.attempt_timeout_min.is_some()
        || want.attempt_timeout_max.is_some()
    {
        let t = match got {
            Observed::Admission(wit::Admission::Allow(g), ..) => g.attempt_timeout,
            _ => return Err("expected an `allow` from the plugin".into()),
        };
        let Some(t) = t else {
            return Err("the grant sets no attempt timeout".into());
        };
        if let Some(x) = want.attempt_timeout
            && t != x.0
        {
            return Err(format!("the attempt timeout is {t}ms, not {}ms", x.0));
        }
        if let Some(lo) = want.attempt_timeout_min
            && t < lo.0
        {
            return Err(format!(
                "the attempt timeout {t}ms is under the minimum {}ms",
                lo.0
            ));
        }
        if let Some(hi) = want.attempt_timeout_max
            && t > hi.0
        {
            return Err(format!(
                "the attempt timeout {t}ms is over the maximum {}ms",
                hi.0
            ));
        }
    }
    if want.hedge.is_some() || want.hedge_after.is_some() || want.hedge_max.is_some() {
        check_hedge(want, got)?;
    }
    if let Some(served) = want.served {
        let is = matches!(got, Observed::Served(Some(_)));
        if !matches!(got, Observed::Served(_)) {
            return Err("expected a `serve` answer".into());
        }
        if is != served {
            return Err(if served {
                "the handler did not answer".into()
            } else {
                "the handler answered".into()
            });
        }
    }
    if want.body.is_some() || want.body_contains.is_some() || want.age.is_some() {
        let Some(a) = got.answer() else {
            return Err("the answer carries no fallback body".into());
        };
        if let Some(b) = &want.body
            && &a.body != b
        {
            return Err(format!("the body is {:?}, not {b:?}", clip(&a.body)));
        }
        if let Some(b) = &want.body_contains
            && !a.body.contains(b.as_str())
        {
            return Err(format!("the body does not contain {b:?}"));
        }
        if let Some(age) = want.age
            && a.age != Some(age.0)
        {
            return Err(format!("the age is {:?}, not {}ms", a.age, age.0));
        }
    }
    Ok(())
}

/// The grant's hedge against `hedge`, `hedge-after` and `hedge-max`.
fn check_hedge(want: &Expect, got: &Observed) -> Result<(), String> {
    let hedge = match got {
        Observed::Admission(wit::Admission::Allow(g), ..) => g.hedge,
        _ => return Err("expected an `allow` from the plugin".into()),
    };
    if let Some(wanted) = want.hedge
        && wanted != hedge.is_some()
    {
        return Err(format!(
            "the grant {} a hedge",
            if wanted { "carries no" } else { "carries" }
        ));
    }
    if want.hedge_after.is_none() && want.hedge_max.is_none() {
        return Ok(());
    }
    let Some(h) = hedge else {
        return Err("the grant carries no hedge".into());
    };
    if let Some(after) = want.hedge_after
        && h.after != after.0
    {
        return Err(format!(
            "the hedge starts after {}ms, not {}ms",
            h.after, after.0
        ));
    }
    if let Some(max) = want.hedge_max
        && h.max != max
    {
        return Err(format!("the hedge's max is {}, not {max}", h.max));
    }
    Ok(())
}
