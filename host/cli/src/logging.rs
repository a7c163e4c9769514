//! How the command's log lines are written: text for a terminal, or one
//! JSON object per line (`--log-format json`, `MENDER_LOG_FORMAT=json`)
//! for a log collector. Either way every line passes the redactor. With
//! the `otlp` feature and an endpoint, the spans are exported as well
//! (`otlp.rs`).

use mender::{RedactingWriter, Redactor};
#[cfg(feature = "otlp")]
use tracing::Level;
#[cfg(feature = "otlp")]
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The shape of a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`) and the spans.
    Json,
}

impl LogFormat {
    /// The flag if given, else `MENDER_LOG_FORMAT`, else text. An unknown
    /// value in the variable is an error rather than a silent fallback: a
    /// collector expecting JSON should not receive text.
    pub(crate) fn resolve(flag: Option<LogFormat>) -> Result<LogFormat, String> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match std::env::var("MENDER_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Ok(v) if v.eq_ignore_ascii_case("text") || v.is_empty() => Ok(LogFormat::Text),
            Ok(v) => Err(format!("MENDER_LOG_FORMAT={v}: expected `text` or `json`")),
            Err(_) => Ok(LogFormat::Text),
        }
    }
}

/// How the command logs, and where its spans go.
#[derive(Clone, Debug, Default)]
pub(crate) struct Logging {
    /// The shape of a log line.
    pub(crate) format: LogFormat,
    /// `--otlp`: the collector to export spans to (else the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub(crate) otlp: Option<String>,
}

/// What must live as long as the process logs: the span exporter, which
/// flushes what is left when dropped.
#[must_use]
pub(crate) struct Telemetry {
    #[cfg(feature = "otlp")]
    _otlp: Option<crate::otlp::Otlp>,
}

/// Installs the process's subscriber: `MENDER_LOG` (or `default_filter`)
/// picks the levels, stderr receives the lines, `redactor` cleans them;
/// with an OTLP endpoint, the spans of `mender` and `mender_mcp` (at
/// `info`, whatever `MENDER_LOG` says) are exported too, redacted alike.
pub(crate) fn init(log: &Logging, default_filter: &str, redactor: Redactor) -> Telemetry {
    let filter =
        EnvFilter::try_from_env("MENDER_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = RedactingWriter::new(std::io::stderr, redactor.clone());
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(false)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer.json())
            .boxed(),
    };
    let logs = tracing_subscriber::registry().with(lines.with_filter(filter));
    #[cfg(feature = "otlp")]
    if let Some(endpoint) = crate::otlp::endpoint(log.otlp.as_deref()) {
        let spans = Targets::new()
            .with_target("mender", Level::INFO)
            .with_target("mender_mcp", Level::INFO);
        return match crate::otlp::start(&endpoint, redactor) {
            Ok((layer, otlp)) => {
                logs.with(layer.with_filter(spans)).init();
                Telemetry { _otlp: Some(otlp) }
            }
            Err(e) => {
                logs.init();
                tracing::warn!("spans are not exported: {e}");
                Telemetry { _otlp: None }
            }
        };
    }
    #[cfg(not(feature = "otlp"))]
    if log.otlp.is_some() || std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        eprintln!("mender: this build has no `otlp` feature: spans are not exported");
    }
    logs.init();
    Telemetry {
        #[cfg(feature = "otlp")]
        _otlp: None,
    }
}
