//! The host's random source: one seeded generator, so a run can be replayed
//! exactly (the demo, tests) when calls are sequential.

use std::sync::Mutex;

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// A seeded random source shared by every plugin instance.
pub(crate) struct RandomSource {
    rng: Mutex<SmallRng>,
}

impl RandomSource {
    /// Seeded with `seed`, or from the OS when `None`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        RandomSource {
            rng: Mutex::new(rng),
        }
    }

    /// The next random number.
    pub(crate) fn next_u64(&self) -> u64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).random()
    }
}
