//! Recorded successful results, for fallback handlers that serve the last
//! good answer (`records-results`).

use std::collections::HashMap;
use std::sync::Mutex;

/// Results kept in all; past this the oldest is evicted, so recording
/// cannot grow memory without bound.
const MAX_RESULTS: usize = 10_000;
/// Results larger than this are not recorded: a fallback is a substitute
/// answer, not a blob store.
const MAX_RESULT_BYTES: usize = 1 << 20;

/// (service, result key) → (body, host-clock ms when recorded).
#[derive(Default)]
pub(crate) struct ResultStore {
    map: Mutex<HashMap<(String, String), (String, u64)>>,
}

impl ResultStore {
    pub(crate) fn record(&self, service: &str, key: &str, body: String, now_ms: u64) {
        if body.len() > MAX_RESULT_BYTES {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_RESULTS
            && !map.contains_key(&(service.to_owned(), key.to_owned()))
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert((service.to_owned(), key.to_owned()), (body, now_ms));
    }

    /// The body and age in ms of the last result recorded for the key.
    pub(crate) fn last(&self, service: &str, key: &str, now_ms: u64) -> Option<(String, u64)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(service.to_owned(), key.to_owned()))
            .map(|(body, at)| (body.clone(), now_ms.saturating_sub(*at)))
    }
}
