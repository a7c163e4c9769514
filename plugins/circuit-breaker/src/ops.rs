//! A decision's state operations, gathered so they go to the host as one
//! `state.batch`: on Redis, one round trip per decision however many
//! counters it reads and writes (contract 0.2).

use mender_guest::state::{Op, OpResult, Store};

/// Operations gathered for one batch; `push` says where its result will be.
#[derive(Default)]
pub struct Ops(Vec<Op>);

impl Ops {
    /// Adds `op`; its result will be at the returned index.
    pub fn push(&mut self, op: Op) -> usize {
        self.0.push(op);
        self.0.len() - 1
    }

    /// Where the next operation's result will be.
    pub fn next_at(&self) -> usize {
        self.0.len()
    }

    /// Runs them as one batch.
    pub fn run(&self, store: &dyn Store) -> Vec<OpResult> {
        store.batch(&self.0)
    }
}

/// The result at `i` read as a count: an increment's new value, or a read
/// number; 0 if absent, not a number, or skipped.
pub fn count(results: &[OpResult], i: usize) -> u64 {
    match results.get(i) {
        Some(OpResult::Number(n)) => u64::try_from(*n).unwrap_or(0),
        Some(OpResult::Value(Some(v))) => v.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// `n` as an increment's delta.
pub fn delta(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
