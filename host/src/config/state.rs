//! The `[state]` table of `mender.toml`: where plugin state (and the retry
//! budget) lives, globally and per service.
//!
//! ```toml
//! [state]                          # every service
//! backend = "redis"                # or "memory" (the default)
//! url = "redis://cache.internal:6379/0"  # a cluster: "redis+cluster://h1:6379,h2:6379"
//! prefix = "mender"                # keys are prefix:plugin:service:key
//! timeout = "50ms"                 # per Redis operation
//! ca-file = "redis-ca.pem"         # rediss:// only: the CA to trust instead of the system's
//!
//! [services.search]
//! state = { backend = "memory" }   # this service keeps its state local
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Keys are namespaced under this unless `prefix` says otherwise.
const DEFAULT_PREFIX: &str = "mender";

/// Longest a single Redis operation may take before the host falls back to
/// local state. A round trip inside a data centre takes well under a
/// millisecond; 50 ms is two orders of magnitude of headroom, yet a plugin
/// hook (itself capped at 100 ms by default) still finishes in time.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Timeouts above this would let a slow Redis hold a hook past its own
/// default limit (100 ms): refused at load.
const MAX_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a service's state lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum StateBackend {
    /// This process's memory (the default).
    #[default]
    Memory,
    /// A Redis server shared by every process configured with it.
    Redis(RedisSettings),
}

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db` (or `rediss://`,
    /// `redis+unix://`), or a cluster's seed nodes:
    /// `redis+cluster://[user:password@]host:port,host:port` (or
    /// `rediss+cluster://`).
    pub url: String,
    /// The first part of every key.
    pub prefix: String,
    /// Connect, read and write timeout of one operation.
    pub timeout: Duration,
    /// For `rediss://`: PEM certificates of the CA to trust instead of the
    /// system's roots (a private CA, a managed service's own).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisSettings {
    // The URL may carry a password: Debug output must not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &shown_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The validated `[state]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateConfig {
    /// For services without their own `state` table (and unlisted ones).
    pub default: StateBackend,
    /// Services whose `state` table differs, by name.
    pub services: BTreeMap<String, StateBackend>,
}

impl StateConfig {
    /// Whether any service keeps its state in Redis.
    pub fn is_shared(&self) -> bool {
        std::iter::once(&self.default)
            .chain(self.services.values())
            .any(|b| matches!(b, StateBackend::Redis(_)))
    }
}

/// A `[state]` table as written; unset fields inherit (a service's from
/// `[state]`, `[state]`'s from the defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct StateToml {
    // Each value keeps where it was written, so an error points at the
    // key at fault (`mender.toml:5:11`), not at the table it is in.
    backend: Option<Spanned<BackendName>>,
    url: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    timeout: Option<Spanned<HumanDuration>>,
    ca_file: Option<Spanned<PathBuf>>,
}

/// A duration written as `"50ms"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(transparent)]
struct HumanDuration(#[serde(with = "humantime_serde")] Duration);

/// What is wrong with a `[state]` table, and the byte offset of the value
/// at fault when one is (else the table's own position is used).
#[derive(Debug)]
pub(crate) struct StateError {
    at: Option<usize>,
    message: String,
}

impl StateError {
    fn at<T>(value: &Spanned<T>, message: String) -> Self {
        StateError {
            at: Some(value.span().start),
            message,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum BackendName {
    Memory,
    Redis,
}

impl StateToml {
    /// This table over `base` (the global table for a service's own).
    pub(crate) fn over(&self, base: &StateToml) -> StateToml {
        StateToml {
            backend: self.backend.clone().or_else(|| base.backend.clone()),
            url: self.url.clone().or_else(|| base.url.clone()),
            prefix: self.prefix.clone().or_else(|| base.prefix.clone()),
            timeout: self.timeout.clone().or_else(|| base.timeout.clone()),
            ca_file: self.ca_file.clone().or_else(|| base.ca_file.clone()),
        }
    }

    /// The backend this table selects, or what is wrong with it.
    pub(crate) fn backend(&self) -> Result<StateBackend, StateError> {
        let Some(backend) = &self.backend else {
            return Ok(StateBackend::Memory);
        };
        match backend.get_ref() {
            BackendName::Memory => Ok(StateBackend::Memory),
            BackendName::Redis => {
                let url = self.url.as_ref().ok_or_else(|| {
                    StateError::at(
                        backend,
                        "backend = \"redis\" needs `url` (e.g. \"redis://127.0.0.1:6379/0\")"
                            .into(),
                    )
                })?;
                super::redis_url::check(url.get_ref()).map_err(|m| StateError::at(url, m))?;
                let prefix = match &self.prefix {
                    None => DEFAULT_PREFIX.to_owned(),
                    Some(p) => {
                        let text = p.get_ref();
                        if text.is_empty() || text.contains(char::is_whitespace) {
                            return Err(StateError::at(
                                p,
                                format!("`prefix` {text:?} must be non-empty, without spaces"),
                            ));
                        }
                        text.clone()
                    }
                };
                let timeout = match &self.timeout {
                    None => DEFAULT_TIMEOUT,
                    Some(t) => {
                        let timeout = t.get_ref().0;
                        if timeout.is_zero() || timeout > MAX_TIMEOUT {
                            return Err(StateError::at(
                                t,
                                format!(
                                    "`timeout` must be between 1ms and {MAX_TIMEOUT:?} (got {timeout:?})"
                                ),
                            ));
                        }
                        timeout
                    }
                };
                let ca_file = match &self.ca_file {
                    Some(f) if !url.get_ref().starts_with("rediss") => {
                        return Err(StateError::at(
                            f,
                            "`ca-file` is for TLS: the `url` must be rediss:// (or rediss+cluster://)"
                                .into(),
                        ));
                    }
                    f => f.as_ref().map(|f| f.get_ref().clone()),
                };
                Ok(StateBackend::Redis(RedisSettings {
                    url: url.get_ref().clone(),
                    prefix,
                    timeout,
                    ca_file,
                }))
            }
        }
    }
}

pub(crate) use super::redis_url::shown_url;

/// Resolves the global `[state]` table and the services' own `state`
/// tables; an error carries the byte offset of the table at fault.
pub(crate) fn resolve<'a>(
    global: Option<&Spanned<StateToml>>,
    services: impl Iterator<Item = (&'a String, Option<&'a Spanned<StateToml>>)>,
    base_dir: &Path,
) -> Result<StateConfig, (usize, String)> {
    // A relative `ca-file` is the config file's neighbour.
    let anchored = |backend: StateBackend| match backend {
        StateBackend::Redis(mut s) => {
            s.ca_file = s.ca_file.map(|f| base_dir.join(f));
            StateBackend::Redis(s)
        }
        memory => memory,
    };
    let base = global.map(|g| g.get_ref().clone()).unwrap_or_default();
    let default = base.backend().map(anchored).map_err(|e| {
        (
            e.at.unwrap_or_else(|| global.map_or(0, |g| g.span().start)),
            format!("[state]: {}", e.message),
        )
    })?;
    let mut config = StateConfig {
        default,
        services: BTreeMap::new(),
    };
    for (name, own) in services {
        let Some(own) = own else { continue };
        let backend = own
            .get_ref()
            .over(&base)
            .backend()
            .map(anchored)
            .map_err(|e| {
                (
                    e.at.unwrap_or(own.span().start),
                    format!("service `{name}`: state: {}", e.message),
                )
            })?;
        if backend != config.default {
            config.services.insert(name.clone(), backend);
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> StateToml {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn service_table_inherits_the_global_one() {
        let global = table("backend = \"redis\"\nurl = \"redis://h:1/\"\ntimeout = \"20ms\"");
        let own = table("prefix = \"fleet\"");
        let StateBackend::Redis(s) = own.over(&global).backend().unwrap() else {
            panic!("expected redis")
        };
        assert_eq!(
            (s.prefix.as_str(), s.timeout),
            ("fleet", Duration::from_millis(20))
        );
        let local = table("backend = \"memory\"");
        assert_eq!(local.over(&global).backend().unwrap(), StateBackend::Memory);
    }

    #[test]
    fn mender_toml_errors_point_at_the_key_at_fault() {
        let parse = |t: &str| crate::Config::parse(t, "mender.toml", std::path::Path::new("."));
        let e =
            parse("[services.a]\nstrategies = []\nstate = { backend = \"redis\" }\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.to_string()
                .contains("service `a`: state: backend = \"redis\" needs `url`"),
            "{e}"
        );
        // The key at fault, not the table it is in.
        let e = parse("\n[state]\nbackend = \"redis\"\nurl = \"redis://h/\"\ntimeout = \"0ms\"\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mender.toml:5:11: [state]: `timeout`"),
            "{e}"
        );
        let e = parse("[state]\nbackend = \"redis\"\nurl = \"http://h/\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("mender.toml:3:7: [state]: `url`"),
            "{e}"
        );
        // A service's table that inherits a bad value points at the value.
        let e = parse("[state]\nprefix = \"a b\"\nurl = \"redis://h/\"\n[services.a]\nstrategies = []\nstate = { backend = \"redis\" }\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mender.toml:2:10: service `a`: state: `prefix`"),
            "{e}"
        );
        let e = parse("[state]\nbakend = \"redis\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let c = parse("[state]\nbackend = \"redis\"\nurl = \"redis://h/\"\n[services.a]\nstate = { backend = \"memory\" }\n[services.b]\n")
            .unwrap();
        assert!(c.state.is_shared());
        assert_eq!(c.state.services.get("a"), Some(&StateBackend::Memory));
        assert!(!c.state.services.contains_key("b"), "b inherits [state]");
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        let e = table("backend = \"redis\"").backend().unwrap_err().message;
        assert!(e.contains("needs `url`"), "{e}");
        let e = table("backend = \"redis\"\nurl = \"http://x\"")
            .backend()
            .unwrap_err()
            .message;
        assert!(e.contains("not a redis:// URL"), "{e}");
        // TLS is built in: rediss:// is accepted, with or without a CA file;
        // a CA file on a plain URL is a mistake.
        let StateBackend::Redis(tls) =
            table("backend = \"redis\"\nurl = \"rediss://x/\"\nca-file = \"ca.pem\"")
                .backend()
                .unwrap()
        else {
            panic!("not redis")
        };
        assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
        let e = table("backend = \"redis\"\nurl = \"redis://x/\"\nca-file = \"ca.pem\"")
            .backend()
            .unwrap_err()
            .message;
        assert!(e.contains("rediss://"), "{e}");
        let e = table("backend = \"redis\"\nurl = \"redis://x/\"\ntimeout = \"5s\"")
            .backend()
            .unwrap_err()
            .message;
        assert!(e.contains("timeout"), "{e}");
        let s = format!(
            "{:?}",
            table("backend = \"redis\"\nurl = \"redis://:pw123@x/\"")
                .backend()
                .unwrap()
        );
        assert!(!s.contains("pw123"), "{s}");
    }
}
