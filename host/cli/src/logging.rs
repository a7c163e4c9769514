//! How the command's log lines are written: text for a terminal, or one
//! JSON object per line (`--log-format json`, `MENDER_LOG_FORMAT=json`)
//! for a log collector. Either way every line passes the redactor.

use mender::{RedactingWriter, Redactor};
use tracing_subscriber::EnvFilter;

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

/// Installs the process's subscriber: `MENDER_LOG` (or `default_filter`)
/// picks the levels, stderr receives the lines, `redactor` cleans them.
pub(crate) fn init(format: LogFormat, default_filter: &str, redactor: Redactor) {
    let filter =
        EnvFilter::try_from_env("MENDER_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = RedactingWriter::new(std::io::stderr, redactor);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.with_writer(writer).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(false)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer.json())
            .init(),
    }
}
