//! Redaction at the log writer: every formatted line of every crate, at
//! every level, passes through the [`Redactor`] before it is written.
//!
//! mender redacts what it logs itself, but libraries log past it: rmcp
//! writes whole JSON-RPC messages at `trace` (an upstream's error with a
//! token in it, a client's `Authorization` header), and any crate may put
//! a URL with a password in a `debug` line. Redacting where the line is
//! written catches all of them.
//!
//! ```no_run
//! use mender::{RedactingWriter, Redactor};
//!
//! let mut redactor = Redactor::default();
//! redactor.add_secret("the-agent's-token");
//! tracing_subscriber::fmt()
//!     .with_writer(RedactingWriter::new(std::io::stderr, redactor))
//!     .init();
//! ```

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use crate::redact::Redactor;

/// A [`MakeWriter`] that redacts each line before handing it to the
/// writers `inner` makes.
///
/// `tracing_subscriber::fmt` formats an event into one buffer and writes
/// it with one `write_all`, so each write this sees is one whole event and
/// a secret is never split between two writes.
#[derive(Clone, Debug)]
pub struct RedactingWriter<M> {
    inner: M,
    redactor: Arc<Redactor>,
    json: bool,
}

impl<M> RedactingWriter<M> {
    /// Writes through `inner`, redacting with `redactor` (register the
    /// agent's secrets on it first).
    pub fn new(inner: M, redactor: Redactor) -> Self {
        RedactingWriter {
            inner,
            redactor: Arc::new(redactor),
            json: false,
        }
    }

    /// For a subscriber that writes one JSON object per line
    /// (`tracing_subscriber::fmt().json()`): each string in the object is
    /// redacted on its own, with its key as context (`"token":"…"`), and
    /// the object written back, so a redaction can never cut through a
    /// quote and leave a line that no longer parses.
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = RedactingLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            inner: self.inner.make_writer(),
            redactor: self.redactor.clone(),
            json: self.json,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingLine {
            inner: self.inner.make_writer_for(meta),
            redactor: self.redactor.clone(),
            json: self.json,
        }
    }
}

/// The writer [`RedactingWriter`] makes for one event.
#[derive(Debug)]
pub struct RedactingLine<W> {
    inner: W,
    redactor: Arc<Redactor>,
    json: bool,
}

impl<W: Write> Write for RedactingLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let parsed = self
            .json
            .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
            .flatten();
        let redacted = match parsed {
            Some(mut value) => {
                redact_json(&self.redactor, &mut value);
                let mut line = value.to_string();
                line.push('\n');
                line
            }
            // Not JSON after all (a writer shared with plain text): the
            // line is redacted as text.
            None => self.redactor.redact(&text),
        };
        self.inner.write_all(redacted.as_bytes())?;
        // All of `buf` was consumed, whatever length its redaction had.
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Redacts every string in `value`: an object's values as `key=value`
/// pairs (so a field named `token` or `authorization` is redacted whatever
/// its value looks like), and the keys themselves.
fn redact_json(redactor: &Redactor, value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = redactor.redact(s),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(redactor, v)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                let key = match &mut v {
                    Value::String(s) => {
                        let (k, redacted) = redactor.redact_pair(&key, s);
                        *s = redacted;
                        k
                    }
                    other => {
                        redact_json(redactor, other);
                        redactor.redact(&key)
                    }
                };
                map.insert(key, v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_every_target_is_redacted() {
        let sink = Sink::default();
        let mut redactor = Redactor::default();
        redactor.add_secret("hunter2-registered");
        let writer = {
            let sink = sink.clone();
            RedactingWriter::new(move || sink.clone(), redactor)
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "rmcp::service", "received {{\"jsonrpc\":\"2.0\",\"error\":{{\"message\":\"bad key sk-proj-abcdefghijklmnop1234\"}}}}");
            tracing::debug!(target: "hyper", url = "redis://:pw-in-url@cache:6379", "connecting");
            tracing::error!(target: "anything", "echo HUNTER2-REGISTERED");
        });
        let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 3, "{logs}");
        for secret in [
            "sk-proj-abcdefghijklmnop1234",
            "pw-in-url",
            "HUNTER2-REGISTERED",
        ] {
            assert!(!logs.contains(secret), "{secret} leaked:\n{logs}");
        }
        assert!(logs.contains("rmcp::service"), "{logs}");
    }
}
