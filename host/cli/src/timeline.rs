//! The demo's timeline: one line per eventful call, runs of uneventful
//! successes folded into one line, and plugin log lines (circuit
//! transitions...) interleaved at their virtual time.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Shared by the demo loop and the tracing layer, so lines stay in order.
pub(crate) struct Timeline {
    start: Instant,
    quiet: bool,
    /// Uneventful successes not yet printed.
    ok_run: u32,
    /// The shape of the last eventful line, and how many calls since had
    /// the same shape (printed as one line when the shape changes).
    last_shape: String,
    repeats: u32,
}

pub(crate) static TIMELINE: Mutex<Option<Timeline>> = Mutex::new(None);

pub(crate) fn start(quiet: bool) {
    *TIMELINE.lock().unwrap() = Some(Timeline {
        start: Instant::now(),
        quiet,
        ok_run: 0,
        last_shape: String::new(),
        repeats: 0,
    });
}

fn secs(d: Duration) -> String {
    format!("{:>7.3}s", d.as_secs_f64())
}

impl Timeline {
    fn flush(&mut self) {
        if self.repeats > 0 && !self.quiet {
            out!("          · {} more call(s) the same way", self.repeats);
        }
        self.repeats = 0;
        if self.ok_run > 0 {
            if !self.quiet {
                out!(
                    "          · {} call(s) ok on the first attempt",
                    self.ok_run
                );
            }
            self.last_shape.clear();
        }
        self.ok_run = 0;
    }

    fn line(&mut self, text: &str, shape: &str) {
        if !shape.is_empty() && shape == self.last_shape && self.ok_run == 0 {
            self.repeats += 1;
            return;
        }
        self.flush();
        self.last_shape = shape.to_owned();
        if !self.quiet {
            // Reasons and log lines come from plugins: no raw newline or
            // ANSI escape of theirs reaches the terminal.
            let text = mender::escape_control(text);
            out!("{} {text}", secs(self.start.elapsed()));
        }
    }
}

/// Counts an uneventful success.
pub(crate) fn ok() {
    if let Some(t) = TIMELINE.lock().unwrap().as_mut() {
        t.ok_run += 1;
    }
}

/// Prints an eventful call's line; consecutive calls of the same `shape`
/// are folded into one count.
pub(crate) fn call(text: &str, shape: &str) {
    if let Some(t) = TIMELINE.lock().unwrap().as_mut() {
        t.line(text, shape);
    }
}

/// Prints a line that is never folded.
pub(crate) fn line(text: &str) {
    call(text, "")
}

/// Ends the timeline.
pub(crate) fn finish() {
    if let Some(t) = TIMELINE.lock().unwrap().as_mut() {
        t.flush();
    }
}

/// Prints plugin log lines (target `mender::plugin`) into the timeline.
pub(crate) struct PluginLogLayer;

#[derive(Default)]
struct Fields {
    plugin: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plugin" => self.plugin = value.to_owned(),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "plugin" => self.plugin = format!("{value:?}").trim_matches('"').to_owned(),
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for PluginLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        // Plugins' info and above: what a person watching wants to see
        // (circuit transitions), not every decision's debug line.
        let meta = event.metadata();
        if meta.target() != "mender::plugin" || *meta.level() > tracing::Level::INFO {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        line(&format!("  ▸ [{}] {}", f.plugin, f.message));
    }
}
