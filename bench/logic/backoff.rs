//! The bundled `exponential-backoff` plugin's decision, in plain Rust with
//! no dependencies, at the plugin's defaults: base 100 ms, factor 2,
//! max-delay 30 s, 5 attempts, full jitter, `Retry-After` honoured,
//! connect/timeout/rate-limited/resource/protocol/unknown retried, the
//! other kinds passed on.
//!
//! Shared by the native comparison (`host/benches/`) and the Extism guest
//! (`bench/extism-compare/guest`) through `#[path]`, so that both run the
//! same logic as the Wasm plugin (`plugins/exponential-backoff/src/policy.rs`).

/// The class of a failure (the WIT `error-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Timeout,
    RateLimited,
    Auth,
    Tool,
    Protocol,
    Resource,
    Cancelled,
    Rejected,
    Unknown,
}

impl Kind {
    /// The WIT name, as the plugin prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Timeout => "timeout",
            Kind::RateLimited => "rate-limited",
            Kind::Auth => "auth",
            Kind::Tool => "tool",
            Kind::Protocol => "protocol",
            Kind::Resource => "resource",
            Kind::Cancelled => "cancelled",
            Kind::Rejected => "rejected",
            Kind::Unknown => "unknown",
        }
    }

    /// Every kind, in WIT order (tests/contract.rs checks it against the WIT).
    pub const ALL: [Kind; 10] = [
        Kind::Connect,
        Kind::Timeout,
        Kind::RateLimited,
        Kind::Auth,
        Kind::Tool,
        Kind::Protocol,
        Kind::Resource,
        Kind::Cancelled,
        Kind::Rejected,
        Kind::Unknown,
    ];

    /// The kind named `name` (the WIT name), if any.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn retried(self) -> bool {
        matches!(
            self,
            Kind::Connect
                | Kind::Timeout
                | Kind::RateLimited
                | Kind::Resource
                | Kind::Protocol
                | Kind::Unknown
        )
    }
}

/// What the plugin's `on-error` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Pass,
    Retry(u64),
    Fail(String),
}

/// The facts of a failed attempt the decision reads.
pub struct Event<'a> {
    pub kind: Kind,
    pub message: &'a str,
    pub attempt: u32,
    pub retry_after: Option<u64>,
    pub deadline_left: Option<u64>,
}

/// The policy at the plugin's defaults.
pub struct Backoff {
    pub base: u64,
    pub factor: f64,
    pub max_delay: u64,
    pub max_attempts: u32,
    pub honor_retry_after: bool,
}

/// The plugin's defaults (plugins/exponential-backoff/src/config.rs).
pub const DEFAULTS: Backoff = Backoff {
    base: 100,
    factor: 2.0,
    max_delay: 30_000,
    max_attempts: 5,
    honor_retry_after: true,
};

impl Backoff {
    /// What to do after `event`, `random` being the jitter's randomness.
    pub fn decide(&self, event: &Event<'_>, random: u64) -> Decision {
        if !event.kind.retried() {
            return Decision::Pass;
        }
        if event.attempt >= self.max_attempts {
            return Decision::Fail(format!(
                "gave up after {} attempts; last error ({}): {}",
                event.attempt,
                event.kind.name(),
                event.message
            ));
        }
        let exponent = event.attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let nominal =
            (self.base as f64 * self.factor.powi(exponent)).min(self.max_delay as f64) as u64;
        let mut delay = between_from(random, 0, nominal.saturating_add(1));
        if let (true, Some(asked)) = (self.honor_retry_after, event.retry_after) {
            if asked > self.max_delay {
                return Decision::Fail(format!(
                    "upstream asked to wait {asked}ms (Retry-After), longer than max-delay {}ms",
                    self.max_delay
                ));
            }
            delay = delay.max(asked);
        }
        if let Some(left) = event.deadline_left
            && delay > left
        {
            return Decision::Fail(format!(
                "the next retry, in {delay}ms, would pass the call's deadline ({left}ms left)"
            ));
        }
        Decision::Retry(delay)
    }
}

/// A number in `lo..hi` from one random `u64` (mender-guest's
/// `random::between_from`).
pub fn between_from(random: u64, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = hi - lo;
    lo + ((u128::from(random) * u128::from(span)) >> 64) as u64
}

/// A splitmix64 step: the random numbers the host would hand the plugin.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
