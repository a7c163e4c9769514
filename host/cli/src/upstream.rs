//! A simulated flaky upstream for the demo: a scripted sequence of phases
//! (healthy, outage, rate limiting, token expiry) in virtual time, with
//! seeded randomness so a seed replays the same run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use mender::{Classify, Failure, HttpError};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::time::Instant;

/// What the upstream is going through at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Answers, now and then very slowly.
    Healthy,
    /// Refuses connections.
    Outage,
    /// Answers 429 with `Retry-After` to many calls.
    RateLimited,
}

/// The scripted phases: (from second, phase).
pub(crate) const SCRIPT: &[(u64, Phase)] = &[
    (0, Phase::Healthy),
    (20, Phase::Outage),
    (35, Phase::Healthy),
    (50, Phase::RateLimited),
    (62, Phase::Healthy),
];

/// When the upstream rotates its token: calls with the old one get 401
/// until the agent refreshes.
pub(crate) const TOKEN_ROTATES_AT: Duration = Duration::from_secs(70);

/// Share of healthy calls that hang for [`SLOW_CALL`] (past the demo's
/// attempt timeout).
const SLOW_SHARE: f64 = 0.04;
const SLOW_CALL: Duration = Duration::from_secs(5);
/// Share of calls refused while rate limited.
const LIMITED_SHARE: f64 = 0.5;

/// An upstream failure, as a real client would see it.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    Refused(std::io::Error),
    Http(HttpError),
}

impl Classify for UpstreamError {
    fn classify(&self) -> Failure {
        match self {
            UpstreamError::Refused(e) => e.classify(),
            UpstreamError::Http(e) => e.classify(),
        }
    }
}

/// The simulated upstream.
pub(crate) struct FlakyUpstream {
    rng: Mutex<SmallRng>,
    /// When the script began (moved by [`FlakyUpstream::restart`]).
    start: Mutex<Instant>,
    /// The token version the server accepts.
    accepted_token: AtomicU64,
    /// The agent's current token version (bumped by its credential
    /// provider).
    pub(crate) agent_token: AtomicU64,
}

impl FlakyUpstream {
    pub(crate) fn new(seed: u64) -> Self {
        FlakyUpstream {
            rng: Mutex::new(SmallRng::seed_from_u64(seed ^ 0x5eed_f1a4)),
            start: Mutex::new(Instant::now()),
            accepted_token: AtomicU64::new(1),
            agent_token: AtomicU64::new(1),
        }
    }

    /// Time into the script.
    fn elapsed(&self) -> Duration {
        self.start.lock().unwrap().elapsed()
    }

    /// Starts the script again (for `mender demo --watch`, which loops it).
    pub(crate) fn restart(&self) {
        *self.start.lock().unwrap() = Instant::now();
        self.accepted_token.store(1, Ordering::Relaxed);
        self.agent_token.store(1, Ordering::Relaxed);
    }

    /// How long one pass of the script lasts: its last phase and the token
    /// rotation, plus the same again healthy.
    pub(crate) fn script_length() -> Duration {
        let last = SCRIPT.last().map_or(0, |(s, _)| *s);
        Duration::from_secs(last.max(TOKEN_ROTATES_AT.as_secs()) + 20)
    }

    pub(crate) fn phase(&self) -> Phase {
        let t = self.elapsed().as_secs();
        SCRIPT
            .iter()
            .rev()
            .find(|(from, _)| t >= *from)
            .map_or(Phase::Healthy, |(_, p)| *p)
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().random()
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.rng.lock().unwrap().random_range(30..150))
    }

    /// One request.
    pub(crate) async fn request(&self, operation: &str) -> Result<String, UpstreamError> {
        if self.elapsed() >= TOKEN_ROTATES_AT {
            self.accepted_token.store(2, Ordering::Relaxed);
        }
        match self.phase() {
            Phase::Outage => {
                tokio::time::sleep(Duration::from_millis(3)).await;
                return Err(UpstreamError::Refused(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connect to api.example.test:443: connection refused",
                )));
            }
            Phase::RateLimited if self.roll() < LIMITED_SHARE => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let mut headers = HeaderMap::new();
                let secs = 1 + (self.roll() * 3.0) as u64;
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
                return Err(UpstreamError::Http(HttpError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    headers,
                    body: "rate limit exceeded".into(),
                }));
            }
            _ => {}
        }
        let token = self.agent_token.load(Ordering::Relaxed);
        if token < self.accepted_token.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(15)).await;
            return Err(UpstreamError::Http(HttpError {
                status: StatusCode::UNAUTHORIZED,
                headers: HeaderMap::new(),
                // Real servers echo credentials back more often than they
                // should; mender redacts this before anyone sees it.
                body: format!("token expired: Authorization: Bearer ghp_demoToken{token:0>26}"),
            }));
        }
        if self.roll() < SLOW_SHARE {
            tokio::time::sleep(SLOW_CALL).await;
        } else {
            tokio::time::sleep(self.latency()).await;
        }
        Ok(format!(
            "{{\"operation\":\"{operation}\",\"items\":{}}}",
            (self.roll() * 20.0) as u32
        ))
    }
}
