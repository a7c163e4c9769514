//! The conformance kit: replays language-neutral scenario files (error
//! events, outcomes, clock advances, and the answers or properties
//! expected) against a strategy or fallback plugin, on a virtual clock with
//! seeded random numbers, so any plugin in any Wasm language can be checked
//! against the same behaviour. `mender conformance PLUGIN.wasm` is its
//! command line.
//!
//! ```no_run
//! use mender::conformance::{ScenarioFile, Subject};
//!
//! let plugin = Subject::load("target/polyglot/adaptive-retry-py.wasm")?;
//! let files = ScenarioFile::load("plugins/adaptive-retry-py/conformance".as_ref())?;
//! let report = plugin.run(&files, None);
//! println!("{report}");
//! assert!(report.passed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod describe;
mod expect;
mod expectation;
mod permits;
mod report;
mod runner;
mod scenario;

pub use report::{Divergence, Report, ScenarioResult};
pub use runner::Subject;
pub use scenario::{
    CallSpec, EventSpec, Expect, Millis, OneOrMany, PermitRef, RecordedSpec, Scenario,
    ScenarioError, ScenarioFile, Step, Succeed, SucceedSpec,
};
