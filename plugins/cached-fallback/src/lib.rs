//! Cached fallback: when a call fails for good, answer with the last
//! successful result of the same operation, if it is recent enough. The
//! host records the results (this handler asks it to at `init`). See
//! README.md.

use mender_guest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Config {
    /// The oldest result worth serving. None by default (any age): whether
    /// stale beats nothing depends on the data, and every answer carries its
    /// `age` for the caller to judge.
    #[serde(default)]
    max_age: Option<Millis>,
}

struct CachedFallback {
    max_age: Option<u64>,
}

impl CachedFallback {
    /// The recorded result as an answer, if it is young enough.
    fn answer(&self, recorded: &RecordedResult) -> Option<FallbackAnswer> {
        if self.max_age.is_some_and(|max| recorded.age > max) {
            return None;
        }
        Some(FallbackAnswer {
            body: recorded.body.clone(),
            age: Some(recorded.age),
        })
    }
}

impl FallbackHandler for CachedFallback {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(CachedFallback {
            max_age: config.max_age.map(Millis::get),
        })
    }

    fn records_results(&self) -> bool {
        true
    }

    fn serve(
        &self,
        event: &ErrorEvent,
        recorded: Option<&RecordedResult>,
    ) -> Option<FallbackAnswer> {
        let Some(recorded) = recorded else {
            mender_guest::debug!("no recorded result for {}", event.operation());
            return None;
        };
        let answer = self.answer(recorded);
        match &answer {
            Some(_) => mender_guest::debug!(
                "answering {} with its result from {} ago",
                event.operation(),
                Millis(recorded.age)
            ),
            None => mender_guest::debug!(
                "the recorded result of {} is {} old, older than max-age",
                event.operation(),
                Millis(recorded.age)
            ),
        }
        answer
    }
}

mender_guest::export_fallback!(CachedFallback);

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(json: &str) -> CachedFallback {
        CachedFallback::init(mender_guest::config::parse(json).unwrap()).unwrap()
    }

    fn recorded(age: u64) -> RecordedResult {
        RecordedResult {
            body: r#"{"ok":true}"#.into(),
            age,
        }
    }

    #[test]
    fn serves_results_up_to_max_age() {
        let handler = handler(r#"{"max-age": "5m"}"#);
        let answer = handler.answer(&recorded(300_000)).unwrap();
        assert_eq!(answer.body, r#"{"ok":true}"#);
        assert_eq!(answer.age, Some(300_000));
        assert_eq!(handler.answer(&recorded(300_001)), None);
    }

    #[test]
    fn without_max_age_serves_any_age() {
        let handler = handler("{}");
        assert!(handler.answer(&recorded(u64::MAX)).is_some());
        assert!(handler.records_results());
    }
}
