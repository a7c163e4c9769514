//! `mender.toml`: the schema, its defaults, and validation whose errors say
//! where (file, line, column) and what (key, plugin, service).
//!
//! ```toml
//! [guardrails]                 # every service; each key optional
//! max-attempts = 4
//! attempt-timeout = "60s"      # or "off"
//!
//! [limits]                     # the plugin sandbox, every plugin
//! hook-timeout = "100ms"
//! state-kib = 1024             # state per (plugin, service): bytes...
//! state-keys = 1024            # ...and keys
//!
//! [plugins.backoff]
//! bundled = "exponential-backoff"   # or: path = "plugins/my.wasm"
//! on-fault = "fail-open"            # or "fail-closed"
//! limits = { memory-mib = 16 }      # this plugin's overrides of [limits]
//! dirs = [{ host = "cache", guest = "/cache", mode = "read-only" }]   # WASI access
//! config = { base = "200ms" }
//!
//! [services.default]           # used for services not listed
//! strategies = ["breaker", "backoff"]
//! fallbacks = ["cached"]
//!
//! [services.github]
//! strategies = ["backoff"]
//! guardrails = { max-attempts = 3 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod grants;
pub(crate) mod guardrails;
mod quarantine;
pub(crate) mod ranges;
mod retry_budget;
pub(crate) mod state;
mod state_quota;

pub use grants::{DirGrant, DirMode};
pub use guardrails::{Guardrails, RetryRefusal};
pub use quarantine::QuarantinePolicy;
pub use retry_budget::RetryBudget;
pub use state::{RedisSettings, StateBackend, StateConfig};
pub use state_quota::StateQuota;

use guardrails::GuardrailsToml;
use state::StateToml;

use ranges::TomlDuration;

/// The name of the service whose pipeline serves services not listed.
pub const DEFAULT_SERVICE: &str = "default";

/// What the host does for a call when a plugin hook traps, times out or
/// answers something invalid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFault {
    /// Carry on as if the plugin had no opinion (`pass`, or `allow` for
    /// admission). The default: a broken plugin must not turn every call
    /// into a failure.
    #[default]
    FailOpen,
    /// Fail the call (or refuse the attempt), naming the plugin.
    FailClosed,
}

/// The plugin sandbox's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit on one hook call (`admit`, `on-error`, `serve`).
    pub hook_timeout: Duration,
    /// Wall-clock limit on instantiating and `init`.
    pub init_timeout: Duration,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Warm instances kept per plugin.
    pub pool_size: usize,
    /// Largest text a plugin may hand back (fallback body, reason), bytes.
    pub max_answer_bytes: usize,
    /// When a plugin that keeps faulting is benched.
    pub quarantine: QuarantinePolicy,
    /// What the plugin may keep in state per service (`state-kib`,
    /// `state-keys`; see [`crate::host::state::quota`]).
    pub state_quota: StateQuota,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A decision takes microseconds; 100 ms is a thousand-fold
            // headroom and still small next to the network call it guards.
            hook_timeout: Duration::from_millis(100),
            // Python and JavaScript components start their interpreter in
            // init, which takes hundreds of milliseconds on a busy machine.
            init_timeout: Duration::from_secs(10),
            // Enough for interpreted-language components (tens of MiB of
            // heap), small enough that a memory bomb is stopped early.
            memory_bytes: 128 << 20,
            // One warm instance per core can be busy at once; more idle
            // instances would only hold memory.
            pool_size: std::thread::available_parallelism().map_or(2, |n| n.get()),
            // A substitute answer is a page of JSON, not a download; 1 MiB
            // is generous and still bounds what a plugin can push on us.
            max_answer_bytes: 1 << 20,
            quarantine: QuarantinePolicy::default(),
            // Reasons with the numbers, in `StateQuota::default`.
            state_quota: StateQuota::default(),
        }
    }
}

/// Optional limit settings as written in `mender.toml` (`[limits]` or a
/// plugin's `limits` table); unset fields inherit. Spanned, so a value out
/// of its range (`ranges.rs`) is refused where it is written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsToml {
    hook_timeout: Option<Spanned<TomlDuration>>,
    init_timeout: Option<Spanned<TomlDuration>>,
    memory_mib: Option<Spanned<u64>>,
    pool_size: Option<Spanned<u64>>,
    max_answer_kib: Option<Spanned<u64>>,
    quarantine_after: Option<Spanned<u64>>,
    quarantine_window: Option<Spanned<TomlDuration>>,
    quarantine_for: Option<Spanned<TomlDuration>>,
    state_kib: Option<Spanned<u64>>,
    state_keys: Option<Spanned<u64>>,
}

impl LimitsToml {
    /// `base` with the fields set here replaced; `Err` carries the byte
    /// offset of a value out of range, and why.
    fn apply(&self, base: &Limits) -> Result<Limits, (usize, String)> {
        // Every range's maximum fits a usize and shifts without overflow.
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Limits {
            hook_timeout: ranges::HOOK_TIMEOUT
                .check("hook-timeout", self.hook_timeout.as_ref())?
                .unwrap_or(base.hook_timeout),
            init_timeout: ranges::INIT_TIMEOUT
                .check("init-timeout", self.init_timeout.as_ref())?
                .unwrap_or(base.init_timeout),
            memory_bytes: ranges::MEMORY_MIB
                .check("memory-mib", self.memory_mib.as_ref())?
                .map_or(base.memory_bytes, |m| size(m) << 20),
            pool_size: ranges::POOL_SIZE
                .check("pool-size", self.pool_size.as_ref())?
                .map_or(base.pool_size, size),
            max_answer_bytes: ranges::MAX_ANSWER_KIB
                .check("max-answer-kib", self.max_answer_kib.as_ref())?
                .map_or(base.max_answer_bytes, |k| size(k) << 10),
            quarantine: QuarantinePolicy {
                after: ranges::QUARANTINE_AFTER
                    .check("quarantine-after", self.quarantine_after.as_ref())?
                    .map_or(base.quarantine.after, |n| {
                        u32::try_from(n).unwrap_or(u32::MAX)
                    }),
                window: ranges::QUARANTINE_TIME
                    .check("quarantine-window", self.quarantine_window.as_ref())?
                    .unwrap_or(base.quarantine.window),
                cool_down: ranges::QUARANTINE_TIME
                    .check("quarantine-for", self.quarantine_for.as_ref())?
                    .unwrap_or(base.quarantine.cool_down),
            },
            state_quota: StateQuota {
                max_bytes: self
                    .state_kib
                    .as_ref()
                    .map_or(base.state_quota.max_bytes, |k| k.get_ref() << 10),
                max_keys: self
                    .state_keys
                    .as_ref()
                    .map_or(base.state_quota.max_keys, |k| *k.get_ref()),
            },
        })
    }

    /// Refuses a state quota out of range, pointing at the value.
    fn check_state_quota(&self, src: &Source<'_>, table: &str) -> Result<(), ConfigError> {
        let ranges = [
            ("state-kib", &self.state_kib, StateQuota::MAX_KIB),
            ("state-keys", &self.state_keys, StateQuota::MAX_KEYS),
        ];
        for (name, value, max) in ranges {
            if let Some(v) = value
                && !(1..=max).contains(v.get_ref())
            {
                return Err(src.error(
                    v.span().start,
                    format!(
                        "{table}: `{name}` must be between 1 and {max} (got {})",
                        v.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` component file (relative paths are resolved against the
    /// config file's directory).
    Path(PathBuf),
    /// A plugin compiled into the `mender` binary, by name.
    Bundled(String),
}

/// One `[plugins.NAME]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// The table's name; how services refer to the plugin.
    pub name: String,
    /// Where its component comes from.
    pub source: PluginSource,
    /// What a fault in this plugin does to a call.
    pub on_fault: OnFault,
    /// The sandbox limits for this plugin (`[limits]` with its overrides).
    pub limits: Limits,
    /// Host directories the plugin may reach through WASI (none by
    /// default).
    pub dirs: Vec<DirGrant>,
    /// The plugin's `config` table as JSON, handed to its `init`.
    pub config_json: String,
    /// Where the table is, for error messages (`file:line`).
    pub location: String,
}

/// One `[services.NAME]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The service name (`default` serves unlisted services).
    pub name: String,
    /// Strategy plugin names, asked in this order.
    pub strategies: Vec<String>,
    /// Fallback handler plugin names, asked in this order.
    pub fallbacks: Vec<String>,
    /// The service's guardrails (global ones with its overrides).
    pub guardrails: Guardrails,
    /// Where each plugin is named in `strategies` or `fallbacks`
    /// (`file:line:column`), for errors found after parsing.
    pub plugin_locations: BTreeMap<String, String>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Config {
    /// Guardrails for services that do not override them.
    pub guardrails: Guardrails,
    /// Sandbox limits.
    pub limits: Limits,
    /// Plugins, in name order.
    pub plugins: Vec<PluginSpec>,
    /// Services, in name order.
    pub services: Vec<ServiceSpec>,
    /// Where state lives (`[state]` and services' `state` tables).
    pub state: StateConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigToml {
    #[serde(default)]
    guardrails: GuardrailsToml,
    #[serde(default)]
    limits: LimitsToml,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<PluginToml>>,
    #[serde(default)]
    services: BTreeMap<String, Spanned<ServiceToml>>,
    #[serde(default)]
    state: Option<Spanned<StateToml>>,
    /// `[mcp]`: read and validated by `mender::mcp::McpConfig` (the
    /// gateway's own settings); the core runtime has no use for it.
    #[serde(default)]
    #[allow(dead_code)]
    mcp: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PluginToml {
    path: Option<String>,
    bundled: Option<String>,
    #[serde(default)]
    on_fault: OnFault,
    #[serde(default)]
    limits: LimitsToml,
    #[serde(default)]
    dirs: Vec<DirToml>,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DirToml {
    host: String,
    guest: String,
    mode: DirMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServiceToml {
    #[serde(default)]
    strategies: Vec<Spanned<String>>,
    #[serde(default)]
    fallbacks: Vec<Spanned<String>>,
    #[serde(default)]
    guardrails: Option<Spanned<GuardrailsToml>>,
    #[serde(default)]
    state: Option<Spanned<StateToml>>,
}

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Text with its origin, for turning byte offsets into `file:line:column`.
pub struct Source<'a> {
    /// The file name (or `<config>`), for messages.
    pub origin: &'a str,
    /// The whole text.
    pub text: &'a str,
}

impl Source<'_> {
    /// A config file's text; the error names the file.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })
    }

    /// The 1-based line and column of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    /// An error located at byte `offset`.
    pub fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_col(offset);
        ConfigError {
            origin: self.origin.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative plugin paths are
    /// resolved against the file's directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = Source::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and validates config text; `origin` names it in errors and
    /// `base_dir` resolves relative plugin paths.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let src = Source { origin, text };
        let raw: ConfigToml = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            src.error(offset, e.message().trim_end().to_owned())
        })?;

        let guardrails = raw
            .guardrails
            .apply(&Guardrails::default())
            .map_err(|m| src.error(0, format!("[guardrails]: {m}")))?;
        raw.limits.check_state_quota(&src, "[limits]")?;
        let limits = raw
            .limits
            .apply(&Limits::default())
            .map_err(|(offset, m)| src.error(offset, format!("[limits]: {m}")))?;

        let mut plugins = Vec::new();
        for (name, spanned) in &raw.plugins {
            let offset = spanned.span().start;
            let p = spanned.get_ref();
            let source = match (&p.path, &p.bundled) {
                (Some(path), None) => PluginSource::Path(base_dir.join(path)),
                (None, Some(b)) => PluginSource::Bundled(b.clone()),
                _ => {
                    return Err(src.error(
                        offset,
                        format!("plugin `{name}`: set exactly one of `path` or `bundled`"),
                    ));
                }
            };
            p.limits
                .check_state_quota(&src, &format!("plugin `{name}`: limits"))?;
            let config_json = serde_json::to_string(&p.config)
                .map_err(|e| src.error(offset, format!("plugin `{name}`: config: {e}")))?;
            let mut dirs = Vec::new();
            for d in &p.dirs {
                let host = base_dir.join(&d.host);
                if !host.is_dir() {
                    return Err(src.error(
                        offset,
                        format!(
                            "plugin `{name}`: granted directory {} is not a directory",
                            host.display()
                        ),
                    ));
                }
                if !d.guest.starts_with('/') {
                    return Err(src.error(
                        offset,
                        format!("plugin `{name}`: guest path `{}` must be absolute", d.guest),
                    ));
                }
                dirs.push(DirGrant {
                    host,
                    guest: d.guest.clone(),
                    mode: d.mode.clone(),
                });
            }
            let (line, _) = src.line_col(offset);
            plugins.push(PluginSpec {
                name: name.clone(),
                source,
                on_fault: p.on_fault,
                limits: p.limits.apply(&limits).map_err(|(offset, m)| {
                    src.error(offset, format!("plugin `{name}`: limits: {m}"))
                })?,
                dirs,
                config_json,
                location: format!("{origin}:{line}"),
            });
        }

        let mut services = Vec::new();
        for (name, spanned) in &raw.services {
            let s = spanned.get_ref();
            let check = |list: &[Spanned<String>]| -> Result<Vec<String>, ConfigError> {
                list.iter()
                    .map(|p| {
                        if raw.plugins.contains_key(p.get_ref()) {
                            Ok(p.get_ref().clone())
                        } else {
                            let known: Vec<&str> = raw.plugins.keys().map(String::as_str).collect();
                            Err(src.error(
                                p.span().start,
                                format!(
                                    "service `{name}` uses unknown plugin `{}` (defined: {})",
                                    p.get_ref(),
                                    if known.is_empty() {
                                        "none".into()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            ))
                        }
                    })
                    .collect()
            };
            let mut plugin_locations = BTreeMap::new();
            for entry in s.strategies.iter().chain(&s.fallbacks) {
                let (line, column) = src.line_col(entry.span().start);
                plugin_locations
                    .entry(entry.get_ref().clone())
                    .or_insert_with(|| format!("{origin}:{line}:{column}"));
            }
            let strategies = check(&s.strategies)?;
            let fallbacks = check(&s.fallbacks)?;
            let service_guardrails = match &s.guardrails {
                Some(g) => g
                    .get_ref()
                    .apply(&guardrails)
                    .map_err(|m| src.error(g.span().start, format!("service `{name}`: {m}")))?,
                None => guardrails.clone(),
            };
            services.push(ServiceSpec {
                name: name.clone(),
                strategies,
                fallbacks,
                guardrails: service_guardrails,
                plugin_locations,
            });
        }

        let state = crate::config::state::resolve(
            raw.state.as_ref(),
            raw.services
                .iter()
                .map(|(n, s)| (n, s.get_ref().state.as_ref())),
        )
        .map_err(|(offset, m)| src.error(offset, m))?;
        Ok(Config {
            guardrails,
            limits,
            plugins,
            services,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "mender.toml", Path::new("/etc/mender"))
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
[guardrails]
max-attempts = 6
attempt-timeout = "off"

[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "200ms", jitter = "none" }

[plugins.mine]
path = "plugins/mine.wasm"
on-fault = "fail-closed"
limits = { hook-timeout = "20ms", quarantine-after = 2 }

[services.github]
strategies = ["backoff", "mine"]
guardrails = { max-attempts = 2 }
"#,
        )
        .unwrap();
        assert_eq!(c.guardrails.max_attempts, 6);
        assert_eq!(c.guardrails.attempt_timeout, None);
        assert_eq!(
            c.plugins[0].config_json,
            r#"{"base":"200ms","jitter":"none"}"#
        );
        assert_eq!(
            c.plugins[1].source,
            PluginSource::Path("/etc/mender/plugins/mine.wasm".into())
        );
        assert_eq!(c.plugins[1].on_fault, OnFault::FailClosed);
        assert_eq!(c.plugins[1].limits.hook_timeout, Duration::from_millis(20));
        assert_eq!(c.plugins[1].limits.quarantine.after, 2);
        // Unset keys inherit [limits] (here, the defaults).
        assert_eq!(
            c.plugins[1].limits.memory_bytes,
            Limits::default().memory_bytes
        );
        assert_eq!(c.plugins[0].limits, c.limits);
        assert_eq!(c.services[0].guardrails.max_attempts, 2);
        // Unset keys inherit from [guardrails], not from the defaults.
        assert_eq!(c.services[0].guardrails.attempt_timeout, None);
    }

    #[test]
    fn unknown_plugin_is_located() {
        let e = parse(
            "[plugins.backoff]\nbundled = \"x\"\n\n[services.github]\nstrategies = [\"backof\"]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (5, 15), "{e}");
        assert!(
            e.to_string()
                .contains("unknown plugin `backof` (defined: backoff)"),
            "{e}"
        );
        assert!(e.to_string().starts_with("mender.toml:5:15:"), "{e}");
    }

    #[test]
    fn typos_and_bad_values_are_located() {
        let e = parse("[guardrails]\nmax-atempts = 3\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("max-atempts"), "{e}");

        let e = parse("[guardrails]\ndeadline = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("soon"), "{e}");

        let e = parse("[plugins.p]\npath = \"a.wasm\"\nbundled = \"b\"\n").unwrap_err();
        assert!(
            e.message.contains("exactly one of `path` or `bundled`"),
            "{e}"
        );
    }

    #[test]
    fn state_quotas_are_read_and_range_checked() {
        let c = parse(
            "[limits]\nstate-kib = 64\n[plugins.p]\nbundled = \"b\"\nlimits = { state-keys = 10 }\n",
        )
        .unwrap();
        assert_eq!(
            c.plugins[0].limits.state_quota,
            StateQuota {
                max_bytes: 64 << 10,
                max_keys: 10
            }
        );
        assert_eq!(
            c.limits.state_quota.max_keys,
            StateQuota::default().max_keys
        );
        let e = parse("[limits]\nstate-kib = 0\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 13), "{e}");
        assert!(
            e.message
                .contains("[limits]: `state-kib` must be between 1 and 1048576 (got 0)"),
            "{e}"
        );
        let e = parse("[plugins.p]\nbundled = \"b\"\nlimits = { state-keys = 99999999 }\n")
            .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.contains("plugin `p`: limits: `state-keys`"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_limits_are_refused_where_written() {
        let e = parse("[limits]\nmemory-mib = 17592186044416\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 14), "{e}");
        assert!(
            e.message
                .contains("`memory-mib` = 17592186044416 is out of range: allowed 1 to 16384"),
            "{e}"
        );
        let e = parse("[limits]\nhook-timeout = \"0s\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("allowed \"1ms\" to \"1m\""), "{e}");
        let e = parse("[plugins.p]\nbundled = \"x\"\nlimits = { init-timeout = \"0s\" }\n")
            .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.starts_with("plugin `p`: limits: `init-timeout`"),
            "{e}"
        );
        let e = parse("[limits]\n\npool-size = 0\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 13), "{e}");
        assert!(e.message.contains("allowed 1 to 1024"), "{e}");
        let e = parse("[limits]\nmax-answer-kib = 18446744073709551615\n").unwrap_err();
        assert!(e.message.contains("`max-answer-kib`"), "{e}");
        // The bounds themselves are accepted.
        let c =
            parse("[limits]\nmemory-mib = 16384\npool-size = 1\nhook-timeout = \"1ms\"\n").unwrap();
        assert_eq!(c.limits.memory_bytes, 16384 << 20);
        assert_eq!(c.limits.pool_size, 1);
    }
}
