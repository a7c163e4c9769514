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

use serde::Deserialize;
use toml::Spanned;

mod grants;
pub(crate) mod guardrails;
mod limits;
mod quarantine;
pub(crate) mod ranges;
pub(crate) mod redis_url;
mod retry_budget;
pub(crate) mod state;
mod state_quota;

pub use grants::{DirGrant, DirMode};
pub use guardrails::{Guardrails, InFlightLimit, RetryRefusal};
pub use limits::Limits;
pub use quarantine::QuarantinePolicy;
pub use retry_budget::RetryBudget;
pub use state::{RedisSettings, StateBackend, StateConfig};
pub use state_quota::StateQuota;

use guardrails::GuardrailsToml;
use state::StateToml;

use limits::LimitsToml;

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
        crate::file::read_text(path, "a TOML config file").map_err(|message| ConfigError {
            origin: path.display().to_string(),
            line: 0,
            column: 0,
            message,
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
            base_dir,
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
    use std::time::Duration;

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
