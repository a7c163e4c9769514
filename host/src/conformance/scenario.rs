//! Scenario files: the data a plugin's behaviour is checked against.
//!
//! A scenario file is TOML (schema below, by example). It is language
//! neutral on purpose: the same file checks a plugin written in Rust,
//! Python, JavaScript or C, and ships beside the plugin's source.
//!
//! ```toml
//! seed = 1                     # the host's random seed (default 1)
//! config = { jitter = "none" } # the plugin's config for every scenario here
//!
//! [[scenario]]
//! name = "connect failures back off exponentially"
//! config = { base = "100ms" }  # optional: replaces the file's config
//!
//! [[scenario.step]]
//! on-error = { kind = "connect", attempt = 1 }
//! expect = { decision = "retry", delay = "100ms" }
//!
//! [[scenario.step]]
//! advance = "5s"               # the virtual clock moves on
//!
//! [[scenario.step]]
//! on-error = { kind = "auth", status = 401 }
//! repeat = 3                   # the same step three times
//! expect = { not = "retry" }   # a property, not an exact answer
//!
//! [[scenario.step]]
//! admit = {}
//! expect = { admission = "allow", hedge-after = "50ms", hedge-max = 1 }
//! ```
//!
//! Routing (contract 0.2): `upstreams = ["primary", "backup"]` on a
//! scenario, `upstream = 1` on an `on-error` or `admit` step, and
//! `expect = { decision = "retry-on", upstream = 1 }` or `routed = false`.
//!
//! A step does exactly one of: `on-error` (an error event; strategies),
//! `admit` (an attempt about to start; strategies), `serve` (a call that
//! failed for good; fallback handlers), `succeed = N` (N successful
//! attempts, counted as the host counts them), `fail = "kind"` (a failed
//! attempt counted but not shown to the plugin) or `advance` (the clock).
//!
//! Contract 0.2's signals (a 0.1 plugin sees none of them; 0.1 files run
//! unchanged):
//!
//! ```toml
//! [[scenario.step]]
//! succeed = { count = 5, latency = "80ms" }  # latencies, slow calls
//!
//! [[scenario.step]]
//! admit = {}
//! in-flight = 7                # from here on, 7 attempts in flight
//! expect = { admission = "allow", permit = true, attempt-timeout-max = "1s" }
//!
//! [[scenario.step]]
//! succeed = { count = 1, permit = "none" }   # an attempt never permitted
//! ```
//!
//! * `succeed = { count, latency, permit }`: `latency` feeds
//!   `current.latency()`, and a success slower than the plugin's declared
//!   `slow-call-threshold` is one of its `current.slow-calls()`.
//! * `in-flight = N` beside any step: what `current.in-flight()` answers
//!   from that step on.
//! * Permits: an `allow` whose grant names a permit leaves it open; the
//!   next outcome (`succeed`, `fail`, `on-error`) is that attempt's and
//!   uses it up (the first success of a `succeed` step is reported in
//!   `current.permitted-successes()`, an `on-error` gets it as
//!   `current.permit()`). `permit = N`, `"last"`, `"first"` (the plugin's
//!   last or first permit in the scenario) or `"none"` names another: a
//!   stale permit, or an attempt admitted without one.
//! * Expectations: `permit = true|false` (the grant carries a permit), and
//!   `attempt-timeout`, `attempt-timeout-min`, `attempt-timeout-max` (the
//!   grant's attempt timeout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::failure::ErrorKind;

pub use super::expectation::Expect;

/// The seed when a file names none: any fixed number makes runs
/// replayable; 1 is the one the demo and tests use.
const DEFAULT_SEED: u64 = 1;

/// A duration in a scenario: `"250ms"`, `"2s"`, or a number of milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(pub u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Millis(n)),
            Raw::Text(t) => humantime::parse_duration(&t)
                .map(|d: Duration| Millis(crate::host::clock::duration_ms(d)))
                .map_err(|e| serde::de::Error::custom(format!("`{t}`: {e}"))),
        }
    }
}

/// One string or a list of them (`decision = "retry"` or `["retry", "pass"]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(from = "OneOrManyRaw")]
pub struct OneOrMany(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyRaw {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyRaw> for OneOrMany {
    fn from(raw: OneOrManyRaw) -> Self {
        match raw {
            OneOrManyRaw::One(s) => OneOrMany(vec![s]),
            OneOrManyRaw::Many(v) => OneOrMany(v),
        }
    }
}

/// A parsed scenario file.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    /// Where it was read from, for reports.
    pub path: PathBuf,
    /// The host's random seed for every scenario in the file.
    pub seed: u64,
    /// The plugin's config for scenarios that set none (`None`: the
    /// runner's default config).
    pub config: Option<toml::Table>,
    /// The scenarios, in file order.
    pub scenarios: Vec<Scenario>,
}

/// One scenario: steps replayed on a fresh host (fresh state, clock at 0,
/// random seeded).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Scenario {
    /// What it checks, in a sentence.
    pub name: String,
    /// The plugin's config for this scenario only.
    pub config: Option<toml::Table>,
    /// The plugin must refuse its config at `init`, with a message that
    /// contains this text; the steps (if any) are not run.
    pub init_error: Option<String>,
    /// The service name events carry (state is scoped by it).
    #[serde(default = "default_service")]
    pub service: String,
    /// Routing (contract 0.2): the upstreams every call of the scenario
    /// names (`current.upstreams()`); default none. A route to an index
    /// past this list is a fault, as in a live call.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// The steps, in order.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

fn default_service() -> String {
    "conformance".into()
}

/// One step: an input, how often, and what the plugin must answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Step {
    /// A failed attempt for the plugin's `on-error`.
    pub on_error: Option<EventSpec>,
    /// An attempt about to start, for the plugin's `admit`.
    pub admit: Option<CallSpec>,
    /// A call that failed for good, for a fallback handler's `serve`.
    pub serve: Option<EventSpec>,
    /// Successful attempts, counted like the host counts them: a number,
    /// or `{ count, latency, permit }`.
    pub succeed: Option<Succeed>,
    /// The latency of each success in `succeed` (default 0).
    pub latency: Option<Millis>,
    /// Contract 0.2: from this step on, this many attempts of the service
    /// are in flight (what `current.in-flight()` answers).
    pub in_flight: Option<u32>,
    /// A failed attempt of this kind, counted but not shown to the plugin
    /// (as when another strategy decided).
    pub fail: Option<ErrorKind>,
    /// Move the virtual clock on by this much.
    pub advance: Option<Millis>,
    /// Do the step this many times (default 1); `expect` holds for each.
    #[serde(default = "one")]
    pub repeat: u32,
    /// What the plugin must answer; empty: anything but a fault.
    #[serde(default)]
    pub expect: Expect,
}

fn one() -> u32 {
    1
}

/// An error event; fields left out take the defaults a first failed
/// attempt of an idempotent call would have.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EventSpec {
    /// The failure's class.
    pub kind: ErrorKind,
    /// The operation (default `op`).
    pub operation: Option<String>,
    /// The failure's text (default: `simulated <kind>`).
    pub message: Option<String>,
    /// HTTP status or JSON-RPC code.
    pub status: Option<i32>,
    /// The upstream's `Retry-After`.
    pub retry_after: Option<Millis>,
    /// Which attempt failed (default 1).
    pub attempt: Option<u32>,
    /// Time since the call's first attempt (default 0).
    pub elapsed: Option<Millis>,
    /// Time left before the call's deadline (default: no deadline).
    pub deadline_left: Option<Millis>,
    /// Whether the operation is idempotent (default true).
    pub idempotent: Option<bool>,
    /// Routing: the index of the upstream the failed attempt used
    /// (default 0 when the scenario names `upstreams`, else none).
    pub upstream: Option<u32>,
    /// Free tags, e.g. `{ quota-remaining = "0" }`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `serve` only: the last recorded successful result of the request.
    pub recorded: Option<RecordedSpec>,
    /// `on-error` (contract 0.2): the permit the failed attempt carried
    /// (default: the plugin's last grant's, if not yet used).
    pub permit: Option<PermitRef>,
}

/// `succeed = N`, or `succeed = { count = N, latency = "80ms", permit = … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Succeed {
    /// This many successes (latency: the step's `latency`, or 0).
    Count(u32),
    /// Successes described.
    Described(SucceedSpec),
}

/// Successes described.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SucceedSpec {
    /// How many (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// The latency of each (default: the step's `latency`, or 0).
    pub latency: Option<Millis>,
    /// The permit the first of them carried (default: the plugin's last
    /// grant's, if not yet used; the others carry none).
    pub permit: Option<PermitRef>,
}

impl<'de> Deserialize<'de> for Succeed {
    /// A number or a table; a mistake inside the table is said as such
    /// (an untagged enum would only say that nothing matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Table(toml::Table),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            D::Error::custom(
                "succeed: expected a number of successes or a table { count, latency, permit }",
            )
        })?;
        match raw {
            Raw::Count(n) => Ok(Succeed::Count(n)),
            Raw::Table(t) => SucceedSpec::deserialize(toml::Value::Table(t))
                .map(Succeed::Described)
                .map_err(|e| D::Error::custom(format!("succeed: {}", e.message()))),
        }
    }
}

impl Succeed {
    /// How many successes.
    pub fn count(&self) -> u32 {
        match self {
            Succeed::Count(n) => *n,
            Succeed::Described(d) => d.count,
        }
    }
}

/// Which permit an outcome carries: a number, or `"last"` / `"first"` (the
/// plugin's last or first permit in this scenario), or `"none"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PermitRef {
    /// This permit.
    Id(u64),
    /// `last`, `first` or `none`.
    Named(String),
}

/// An attempt about to start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CallSpec {
    /// The operation (default `op`).
    pub operation: Option<String>,
    /// Which attempt (default 1).
    pub attempt: Option<u32>,
    /// Time since the call's first attempt (default 0).
    pub elapsed: Option<Millis>,
    /// Time left before the deadline (default: none).
    pub deadline_left: Option<Millis>,
    /// Whether the operation is idempotent (default true).
    pub idempotent: Option<bool>,
    /// Routing: the index of the upstream the attempt would use unless
    /// the grant routes it (default 0 when the scenario names
    /// `upstreams`, else none).
    pub upstream: Option<u32>,
    /// Free tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A recorded result.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RecordedSpec {
    /// The result's body.
    pub body: String,
    /// How long ago it was recorded.
    pub age: Millis,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileToml {
    seed: Option<u64>,
    config: Option<toml::Table>,
    #[serde(rename = "scenario", default)]
    scenarios: Vec<Scenario>,
}

/// A scenario file that cannot be used, and why (with line and column).
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", if *line > 0 { format!(":{line}:{column}") } else { String::new() })]
pub struct ScenarioError {
    /// The file (or directory) at fault.
    pub path: String,
    /// 1-based line of the mistake (0: the file as a whole).
    pub line: usize,
    /// 1-based column of the mistake (0: the file as a whole).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ScenarioFile {
    /// Parses scenario text; `path` names it in reports and errors.
    pub fn parse(text: &str, path: &Path) -> Result<ScenarioFile, ScenarioError> {
        let err = |message: String| ScenarioError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message,
        };
        let raw: FileToml = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ScenarioError {
                line,
                column,
                ..err(e.message().trim_end().to_owned())
            }
        })?;
        if raw.scenarios.is_empty() {
            return Err(err("no [[scenario]] in the file".into()));
        }
        for s in &raw.scenarios {
            for (i, step) in s.steps.iter().enumerate() {
                let permits = [
                    step.on_error.as_ref().and_then(|e| e.permit.as_ref()),
                    match &step.succeed {
                        Some(Succeed::Described(d)) => d.permit.as_ref(),
                        _ => None,
                    },
                ];
                for p in permits.into_iter().flatten() {
                    if let PermitRef::Named(name) = p
                        && !["last", "first", "none"].contains(&name.as_str())
                    {
                        return Err(err(format!(
                            "scenario `{}`, step {}: permit {name:?}: expected a number, \"last\", \"first\" or \"none\"",
                            s.name,
                            i + 1
                        )));
                    }
                }
                let inputs = [
                    step.on_error.is_some(),
                    step.admit.is_some(),
                    step.serve.is_some(),
                    step.succeed.is_some(),
                    step.fail.is_some(),
                    step.advance.is_some(),
                ];
                if inputs.iter().filter(|x| **x).count() != 1 {
                    return Err(err(format!(
                        "scenario `{}`, step {}: set exactly one of on-error, admit, serve, succeed, fail, advance",
                        s.name,
                        i + 1
                    )));
                }
            }
            if s.steps.is_empty() && s.init_error.is_none() {
                return Err(err(format!(
                    "scenario `{}` has no [[scenario.step]]",
                    s.name
                )));
            }
        }
        Ok(ScenarioFile {
            path: path.to_owned(),
            seed: raw.seed.unwrap_or(DEFAULT_SEED),
            config: raw.config,
            scenarios: raw.scenarios,
        })
    }

    /// Reads one `.toml` file, or every `.toml` file in a directory (in
    /// name order).
    pub fn load(path: &Path) -> Result<Vec<ScenarioFile>, ScenarioError> {
        let io = |e: std::io::Error| ScenarioError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        };
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ScenarioError {
                    message: "no .toml scenario files in this directory".into(),
                    ..io(std::io::ErrorKind::NotFound.into())
                });
            }
            files
        } else {
            vec![path.to_owned()]
        };
        files
            .iter()
            .map(|f| {
                let text =
                    crate::file::read_text(f, "a scenario file (.toml)").map_err(|message| {
                        ScenarioError {
                            path: f.display().to_string(),
                            line: 0,
                            column: 0,
                            message,
                        }
                    })?;
                ScenarioFile::parse(&text, f)
            })
            .collect()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
