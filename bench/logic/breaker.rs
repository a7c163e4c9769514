//! A circuit breaker in plain Rust, as the bundled `circuit-breaker` plugin
//! decides with its defaults' shape: open after N consecutive failures, stay
//! open for a while, then let K probes through half-open. For the native
//! comparison in `host/benches/decision.rs`; the caller holds it behind a
//! lock, as a shared breaker must be.

/// The circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open { since: u64 },
    HalfOpen { probes_left: u32 },
}

/// A consecutive-failure breaker.
pub struct Breaker {
    threshold: u32,
    open_for: u64,
    probes: u32,
    streak: u32,
    circuit: Circuit,
}

impl Breaker {
    /// Opens after `threshold` failures in a row, for `open_for` ms, then
    /// lets `probes` attempts through.
    pub fn new(threshold: u32, open_for: u64, probes: u32) -> Breaker {
        Breaker {
            threshold,
            open_for,
            probes,
            streak: 0,
            circuit: Circuit::Closed,
        }
    }

    /// May an attempt start at `now` (ms)?
    pub fn admit(&mut self, now: u64) -> bool {
        match self.circuit {
            Circuit::Closed => true,
            Circuit::Open { since } if now.saturating_sub(since) >= self.open_for => {
                self.circuit = Circuit::HalfOpen {
                    probes_left: self.probes.saturating_sub(1),
                };
                true
            }
            Circuit::Open { .. } => false,
            Circuit::HalfOpen { probes_left: 0 } => false,
            Circuit::HalfOpen { probes_left } => {
                self.circuit = Circuit::HalfOpen {
                    probes_left: probes_left - 1,
                };
                true
            }
        }
    }

    /// An attempt failed at `now`.
    pub fn on_failure(&mut self, now: u64) {
        self.streak = self.streak.saturating_add(1);
        let trip = match self.circuit {
            Circuit::Closed => self.streak >= self.threshold,
            Circuit::HalfOpen { .. } => true,
            Circuit::Open { .. } => false,
        };
        if trip {
            self.circuit = Circuit::Open { since: now };
        }
    }

    /// An attempt succeeded.
    pub fn on_success(&mut self) {
        self.streak = 0;
        self.circuit = Circuit::Closed;
    }
}
