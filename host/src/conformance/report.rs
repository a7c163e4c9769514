//! The result of a conformance run, and how it reads: one line per
//! scenario, and for a failure the first divergence as expected/got.

use std::fmt;
use std::path::PathBuf;

/// The first step at which a plugin's answer differed from the scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The step, from 1 (0: loading the plugin failed).
    pub step: usize,
    /// How many steps the scenario has.
    pub steps: usize,
    /// For a repeated step: which repetition, of how many.
    pub repetition: Option<(u32, u32)>,
    /// The step's input, in words.
    pub input: String,
    /// The virtual clock when the step ran, in ms since the scenario began.
    pub at_ms: u64,
    /// What the scenario expects, in words.
    pub expected: String,
    /// What the plugin answered, in words.
    pub got: String,
    /// Which part of the expectation failed.
    pub why: String,
}

/// One scenario's result.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// The scenario file.
    pub file: PathBuf,
    /// The scenario's name.
    pub name: String,
    /// The number of steps replayed, or the first divergence.
    pub outcome: Result<usize, Divergence>,
}

/// Every scenario's result for one plugin.
#[derive(Clone, Debug)]
pub struct Report {
    /// The plugin's name.
    pub plugin: String,
    /// In file, then scenario, order.
    pub results: Vec<ScenarioResult>,
}

impl Report {
    /// Whether every scenario passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.outcome.is_ok())
    }

    /// The scenarios that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ScenarioResult> {
        self.results.iter().filter(|r| r.outcome.is_err())
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.step == 0 {
            writeln!(f, "      before step 1: {}", self.input)?;
        } else {
            write!(f, "      step {} of {}", self.step, self.steps)?;
            if let Some((i, n)) = self.repetition {
                write!(f, " (repetition {i} of {n})")?;
            }
            writeln!(f, ", at {}ms: {}", self.at_ms, self.input)?;
        }
        writeln!(f, "        expected: {}", self.expected)?;
        writeln!(f, "        got:      {}", self.got)?;
        write!(f, "        because:  {}", self.why)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            let file = r.file.file_name().map_or_else(
                || r.file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            match &r.outcome {
                Ok(steps) => writeln!(f, "pass  {file}: {} ({steps} steps)", r.name)?,
                Err(d) => {
                    writeln!(f, "FAIL  {file}: {}", r.name)?;
                    writeln!(f, "{d}")?;
                }
            }
        }
        let failed = self.failures().count();
        write!(
            f,
            "{}: {} scenarios, {} passed, {failed} failed",
            self.plugin,
            self.results.len(),
            self.results.len() - failed
        )
    }
}
