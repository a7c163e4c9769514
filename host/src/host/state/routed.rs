//! A store that sends each service's keys to the backend configured for
//! it, so one service can share state through Redis while another keeps
//! it in memory.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    BatchOp, BatchResult, MemoryState, QuotaExceeded, RetryAsk, RetryTake, ScopedKey, StateQuota,
    StateScope, StateStatus, StateStore,
};
use crate::config::{StateBackend, StateConfig};

/// Routes keys by service to their backend.
pub struct RoutedState {
    default: Arc<dyn StateStore>,
    services: HashMap<String, Arc<dyn StateStore>>,
    /// For status: each Redis backend once, with the services it serves.
    shared: Vec<(Arc<dyn StateStore>, Vec<String>)>,
}

impl RoutedState {
    /// Builds one backend per distinct setting of `config` (services with
    /// the same Redis settings share one connection pool).
    pub fn from_config(config: &StateConfig) -> Result<RoutedState, String> {
        let mut made: Vec<(StateBackend, Arc<dyn StateStore>, Vec<String>)> = Vec::new();
        let mut backend_for = |b: &StateBackend, service: &str| -> Result<_, String> {
            if let Some((_, store, names)) = made.iter_mut().find(|(k, _, _)| k == b) {
                names.push(service.to_owned());
                return Ok(store.clone());
            }
            let store: Arc<dyn StateStore> = match b {
                StateBackend::Memory => Arc::new(MemoryState::default()),
                #[cfg(feature = "redis")]
                StateBackend::Redis(s) => Arc::new(super::RedisState::connect(s.clone())?),
                // Config validation refuses a Redis backend in such a build.
                #[cfg(not(feature = "redis"))]
                StateBackend::Redis(_) => {
                    return Err("this build of mender has no Redis support".into());
                }
            };
            made.push((b.clone(), store.clone(), vec![service.to_owned()]));
            Ok(store)
        };
        // The empty name marks "every other service" (`*` in status).
        let default = backend_for(&config.default, "")?;
        let mut services = HashMap::new();
        for (name, b) in &config.services {
            services.insert(name.clone(), backend_for(b, name)?);
        }
        let shared = made
            .into_iter()
            .filter(|(b, _, _)| matches!(b, StateBackend::Redis(_)))
            .map(|(_, store, names)| (store, names))
            .collect();
        Ok(RoutedState {
            default,
            services,
            shared,
        })
    }

    fn store(&self, key: &ScopedKey) -> &dyn StateStore {
        self.store_for(&key.service)
    }

    fn store_for(&self, service: &str) -> &dyn StateStore {
        self.services.get(service).unwrap_or(&self.default).as_ref()
    }
}

impl StateStore for RoutedState {
    fn get(&self, key: &ScopedKey, now_ms: u64) -> Option<String> {
        self.store(key).get(key, now_ms)
    }

    fn set_within(
        &self,
        key: ScopedKey,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<(), QuotaExceeded> {
        self.store(&key)
            .set_within(key, value, ttl_ms, now_ms, quota)
    }

    fn delete(&self, key: &ScopedKey) {
        self.store(key).delete(key);
    }

    fn increment_within(
        &self,
        key: ScopedKey,
        delta: i64,
        ttl_ms: Option<u64>,
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<i64, QuotaExceeded> {
        self.store(&key)
            .increment_within(key, delta, ttl_ms, now_ms, quota)
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
        self.store(&key)
            .compare_and_swap_within(key, expected, value, ttl_ms, now_ms, quota)
    }

    fn batch_within(
        &self,
        scope: &StateScope,
        ops: &[BatchOp],
        now_ms: u64,
        quota: StateQuota,
    ) -> Result<Vec<BatchResult>, QuotaExceeded> {
        self.store_for(&scope.service)
            .batch_within(scope, ops, now_ms, quota)
    }

    fn take_retry(&self, ask: RetryAsk, now_ms: u64) -> RetryTake {
        self.store(&ask.calls).take_retry(ask, now_ms)
    }

    fn status(&self) -> Vec<StateStatus> {
        let mut out = Vec::new();
        for (store, names) in &self.shared {
            for mut s in store.status() {
                s.services = names
                    .iter()
                    .map(|n| if n.is_empty() { "*".into() } else { n.clone() })
                    .collect();
                out.push(s);
            }
        }
        out
    }
}
