//! The Redis state backend: state shared by every agent process that points
//! at the same Redis, so a breaker opened by one is open for all, and retry
//! and rate budgets are fleet-wide.
//!
//! ## Why synchronous sockets with short timeouts
//!
//! [`StateStore`] is synchronous: it is called from inside a Wasm host call,
//! which runs on the calling tokio task's thread (or a scoped thread for
//! WASI plugins), and the plugin cannot continue until it has the answer.
//! Whatever client we use, that thread waits for one reply. An async client
//! would need a runtime to drive it, and waiting on it from a runtime
//! thread either needs `block_on` (a panic inside tokio) or a channel to a
//! background runtime (a second thread hop per operation, and a
//! current-thread runtime could not drive a task spawned on itself while
//! we wait). A plain `redis::Connection` with OS-level connect, read and
//! write timeouts waits exactly as long as the reply takes, never longer
//! than [`RedisSettings::timeout`], needs no runtime at all, and so works
//! the same under a multi-thread runtime, a current-thread one, or none.
//! Connections are kept in a small pool so concurrent hook calls do not
//! queue on one socket.
//!
//! ## When Redis is in trouble
//!
//! The first operation that fails (refused, reset, timed out) marks the
//! link down: it logs one warning (the URL without its password), the
//! operation and every later one are served by a local [`MemoryState`], so
//! a plugin always gets an answer, and a background thread reconnects with
//! capped exponential backoff. Once a `PING` answers, shared state resumes.
//! A Redis that fails again right after (up, but too slow for real work)
//! gets a longer backoff each time instead of one timed-out operation per
//! 100 ms.
//! While down, operations cost no network wait at all. [`StateStatus`]
//! reports all of this (see `Runtime::state_status`).
//!
//! ## Atomicity and expiry
//!
//! Every write (`set`, `increment`, `compare_and_swap`, `delete`) and
//! every batch is one Lua script that also keeps the scope's quota
//! accounting and evicts its expired keys (see [`super::redis_quota`]),
//! atomic across every process; `get` is a single command. Keys are `prefix:plugin:service:key`. TTLs
//! are set with `PX` and expire on the Redis server's clock (real time),
//! whatever the host clock is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::{ConnectionLike, RedisResult, Script};

use super::redis_conn::{Conn, Target};
use super::redis_quota::QuotaScript;
use super::{
    BatchOp, BatchResult, MemoryState, QuotaExceeded, RetryAsk, RetryTake, ScopedKey, StateQuota,
    StateScope, StateStatus, StateStore,
};
use crate::config::RedisSettings;
use crate::config::state::shown_url;

/// Idle connections kept per Redis backend: one per core can be busy at
/// once on a 2–4 core agent host; more would only hold sockets.
const MAX_IDLE: usize = 4;
/// First wait before reconnecting: a restart or a failover takes at least
/// this long, and retrying sooner would only spin.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: shared state resumes at most
/// this long after Redis is back, and a dead Redis costs one connect attempt
/// per this interval.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A link that goes down again within this long of coming back starts its
/// next backoff where the last one ended (doubled), so a Redis that is up
/// but too slow costs at most one timed-out operation per [`BACKOFF_MAX`].
const FLAP_WINDOW: Duration = Duration::from_secs(10);

/// `take_retry`: `KEYS` = calls, retries counters; `ARGV` = new calls,
/// percent, floor, TTL. Counters get the TTL when created. Returns
/// `{taken, calls, retries}`.
const TAKE_RETRY_LUA: &str = r"
local function add(key, n)
  local fresh = redis.call('EXISTS', key) == 0
  local v = redis.call('INCRBY', key, n)
  if fresh then redis.call('PEXPIRE', key, ARGV[4]) end
  return v
end
local calls = add(KEYS[1], ARGV[1])
local retries = tonumber(redis.call('GET', KEYS[2]) or '0')
local allowed = math.max(tonumber(ARGV[3]), math.floor(math.max(calls, 0) * tonumber(ARGV[2]) / 100))
if retries < allowed then
  return {1, calls, add(KEYS[2], 1)}
end
return {0, calls, retries}
";

/// State in Redis, with a local fallback while Redis is unreachable.
pub struct RedisState {
    link: Arc<Link>,
    local: MemoryState,
    write: QuotaScript,
    take_retry: Script,
}

/// The connection side, shared with the reconnecting thread.
struct Link {
    target: Target,
    settings: RedisSettings,
    /// The URL with any password removed, for logs and status.
    shown: String,
    idle: Mutex<Vec<Conn>>,
    up: AtomicBool,
    reconnecting: AtomicBool,
    /// Operations served by the local fallback.
    fallback_ops: AtomicU64,
    /// Times the link went down.
    outages: AtomicU64,
    /// When the link last came back, and the wait that preceded it: a
    /// link that fails again soon after (a Redis that answers `PING` but is
    /// too slow for real work) backs off further instead of flapping.
    came_back: Mutex<Option<(std::time::Instant, Duration)>>,
}

impl RedisState {
    /// A backend for `settings`. It connects now (bounded by the timeout);
    /// if Redis is unreachable it starts on local state and keeps trying in
    /// the background, so a down Redis never stops the agent from starting.
    pub fn connect(settings: RedisSettings) -> Result<RedisState, String> {
        let target = Target::new(&settings)?;
        let link = Arc::new(Link {
            target,
            shown: shown_url(&settings.url),
            settings,
            idle: Mutex::new(Vec::new()),
            up: AtomicBool::new(true),
            reconnecting: AtomicBool::new(false),
            fallback_ops: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            came_back: Mutex::new(None),
        });
        match link.open().and_then(|mut c| {
            redis::cmd("PING").query::<()>(c.get())?;
            Ok(c)
        }) {
            Ok(c) => link.put(c),
            Err(e) => Link::down(&link, &e),
        }
        Ok(RedisState {
            link,
            local: MemoryState::default(),
            write: QuotaScript::new(),
            take_retry: Script::new(TAKE_RETRY_LUA),
        })
    }

    /// Where `key` is stored: `prefix:plugin:service:key`; on a cluster
    /// `{prefix:plugin:service}:key`, the scope a hash tag, so a scope's
    /// keys and bookkeeping (which one script touches) share a slot.
    fn redis_key(&self, key: &ScopedKey) -> String {
        format!("{}:{}", self.scope(&key.plugin, &key.service), key.key)
    }

    /// The scope of a plugin's keys for a service, tagged on a cluster.
    fn scope(&self, plugin: &str, service: &str) -> String {
        let scope = format!("{}:{plugin}:{service}", self.link.settings.prefix);
        if self.link.target.is_cluster() {
            format!("{{{scope}}}")
        } else {
            scope
        }
    }

    /// Runs an accounted batch on Redis; `None` if it must be served
    /// locally (see [`RedisState::run`]).
    fn batch(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        quota: StateQuota,
    ) -> Option<Result<Vec<BatchResult>, QuotaExceeded>> {
        let prefix = self.scope(&scope.plugin, &scope.service);
        self.run(|c| self.write.run(c, &prefix, scope, ops, quota))
    }

    /// Runs one accounted write on Redis (a batch of one): its result, or
    /// `None` if it must be served locally.
    fn write(
        &self,
        key: &ScopedKey,
        op: BatchOp,
        quota: StateQuota,
    ) -> Option<Result<BatchResult, QuotaExceeded>> {
        let scope = StateScope {
            plugin: key.plugin.clone(),
            service: key.service.clone(),
        };
        let done = self.batch(&scope, std::slice::from_ref(&op), quota)?;
        Some(done.map(|mut results| results.pop().unwrap_or(BatchResult::Skipped)))
    }

    /// Runs `op` on a pooled connection, or `None` (served locally) if
    /// Redis is down, could not be reached (which marks it down), or
    /// refused the operation.
    fn run<T>(&self, op: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>) -> Option<T> {
        if !self.link.up.load(Ordering::Acquire) {
            self.link.fallback_ops.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Any failure to open a connection (refused, timed out, refused
        // credentials) is an outage: retrying it on every operation would
        // make each one wait.
        let result = self.link.take().map_err(|e| (e, true)).and_then(|mut c| {
            let r = op(c.get());
            match r {
                Ok(v) => {
                    self.link.put(c);
                    Ok(v)
                }
                Err(e) => {
                    let trouble = link_trouble(&e);
                    // An error reply (say, a key of another type written by
                    // someone else) leaves the connection usable.
                    if !trouble {
                        self.link.put(c);
                    }
                    Err((e, trouble))
                }
            }
        });
        match result {
            Ok(v) => Some(v),
            Err((e, trouble)) => {
                if trouble {
                    Link::down(&self.link, &e);
                } else {
                    tracing::debug!(target: "mender::state", redis = %self.link.shown, error = %e, "redis refused a state operation");
                }
                self.link.fallback_ops.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Whether an error is trouble with the link (refused, reset, timed out,
/// unreadable) rather than the server's error reply to one command, after
/// which the connection is still good.
fn link_trouble(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

impl StateStore for RedisState {
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String> {
        let k = self.redis_key(key);
        self.run(|c| redis::cmd("GET").arg(&k).query::<Option<String>>(c))
            .unwrap_or_else(|| self.local.get(key, now_ms))
    }

    fn set_within(
        &self,
        key: ScopedKey,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded> {
        // The value is cloned for the local fallback: a copy costs
        // nothing beside the round trip.
        let op = BatchOp::Set {
            key: key.key.clone(),
            value: value.clone(),
            ttl_ms,
        };
        match self.write(&key, op, quota) {
            Some(written) => written.map(drop),
            None => self.local.set_within(key, value, ttl_ms, now_ms, quota),
        }
    }

    fn delete(&self, key: &ScopedKey) {
        let op = BatchOp::Delete {
            key: key.key.clone(),
        };
        if self.write(key, op, StateQuota::UNLIMITED).is_none() {
            self.local.delete(key);
        }
    }

    fn increment_within(
        &self,
        key: ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded> {
        let op = BatchOp::Increment {
            key: key.key.clone(),
            delta,
            ttl_ms,
        };
        match self.write(&key, op, quota) {
            Some(Ok(BatchResult::Number(n))) => Ok(n),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) | None => self
                .local
                .increment_within(key, delta, ttl_ms, now_ms, quota),
        }
    }

    fn compare_and_swap_within(
        &self,
        key: ScopedKey,
        expected: Option<&str>,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<bool, QuotaExceeded> {
        let op = BatchOp::CompareAndSwap {
            key: key.key.clone(),
            expected: expected.map(str::to_string),
            value: value.clone(),
            ttl_ms,
        };
        match self.write(&key, op, quota) {
            Some(written) => written.map(|r| r == BatchResult::Done),
            None => self
                .local
                .compare_and_swap_within(key, expected, value, ttl_ms, now_ms, quota),
        }
    }

    fn batch_within(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded> {
        match self.batch(scope, ops, quota) {
            Some(done) => done,
            None => self.local.batch_within(scope, ops, now_ms, quota),
        }
    }

    fn take_retry(&self, ask: RetryAsk, now_ms: u64) -> RetryTake {
        let (calls, retries) = (self.redis_key(&ask.calls), self.redis_key(&ask.retries));
        let taken = self.run(|c| {
            self.take_retry
                .key(&calls)
                .key(&retries)
                .arg(ask.new_calls)
                .arg(ask.percent)
                .arg(ask.floor)
                .arg(ask.ttl_ms.max(1))
                .invoke::<(i64, i64, i64)>(c)
        });
        match taken {
            Some((taken, calls, retries)) => RetryTake {
                taken: taken == 1,
                calls,
                retries,
            },
            None => self.local.take_retry(ask, now_ms),
        }
    }

    fn status(&self) -> Vec<StateStatus> {
        vec![StateStatus {
            backend: "redis",
            target: self.link.shown.clone(),
            services: Vec::new(),
            shared: self.link.up.load(Ordering::Acquire),
            fallback_ops: self.link.fallback_ops.load(Ordering::Relaxed),
            outages: self.link.outages.load(Ordering::Relaxed),
        }]
    }
}

impl Link {
    fn open(&self) -> RedisResult<Conn> {
        self.target.open(self.settings.timeout)
    }

    fn take(&self) -> RedisResult<Conn> {
        let pooled = lock(&self.idle).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    fn put(&self, c: Conn) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Marks the link down (logging once per outage) and starts the
    /// reconnecting thread if none runs.
    fn down(link: &Arc<Link>, error: &redis::RedisError) {
        // Connections opened before the outage may be half-dead: drop them
        // all, the reconnecting thread opens fresh ones.
        lock(&link.idle).clear();
        if link.up.swap(false, Ordering::AcqRel) {
            link.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "mender::state",
                redis = %link.shown,
                error = %error,
                "redis state unreachable: using local state until it is back"
            );
        }
        if !link.reconnecting.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(link);
            let spawned = std::thread::Builder::new()
                .name("mender-redis-reconnect".into())
                .spawn(move || reconnect(weak));
            if spawned.is_err() {
                link.reconnecting.store(false, Ordering::Release);
            }
        }
    }
}

/// Tries to reconnect with capped exponential backoff until Redis answers
/// or the backend is dropped.
fn reconnect(link: Weak<Link>) {
    let mut wait = match link.upgrade().and_then(|l| *lock(&l.came_back)) {
        Some((at, last)) if at.elapsed() < FLAP_WINDOW => (last * 2).min(BACKOFF_MAX),
        _ => BACKOFF_FIRST,
    };
    loop {
        std::thread::sleep(wait);
        let Some(link) = link.upgrade() else { return };
        let ping = link.open().and_then(|mut c| {
            redis::cmd("PING").query::<()>(c.get())?;
            Ok(c)
        });
        if let Ok(c) = ping {
            *lock(&link.came_back) = Some((std::time::Instant::now(), wait));
            link.put(c);
            link.reconnecting.store(false, Ordering::Release);
            link.up.store(true, Ordering::Release);
            tracing::info!(target: "mender::state", redis = %link.shown, "redis state reachable again: shared state resumes");
            return;
        }
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single assignment or Vec operation, so a
    // poisoned lock holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shown() {
        let shown = shown_url("redis://user:hunter2@cache.internal:6380/2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache.internal:6380"), "{shown}");
        assert_eq!(shown_url("not a url"), "<unparsable redis url>");
    }

    #[test]
    fn unreachable_redis_falls_back_without_waiting_again() {
        // Port 1 on loopback: connection refused at once.
        let store = RedisState::connect(RedisSettings {
            url: "redis://127.0.0.1:1/".into(),
            prefix: "t".into(),
            timeout: Duration::from_millis(50),
            ca_file: None,
        })
        .unwrap();
        let key = ScopedKey {
            plugin: "p".into(),
            service: "s".into(),
            key: "n".into(),
        };
        assert_eq!(store.increment(key.clone(), 2, None, 0), 2);
        assert_eq!(store.increment(key.clone(), 3, None, 0), 5);
        assert!(store.compare_and_swap(key.clone(), Some("5"), "x".into(), None, 0));
        let s = &store.status()[0];
        assert!(!s.shared);
        assert_eq!(s.outages, 1);
        assert!(s.fallback_ops >= 3);
    }
}
