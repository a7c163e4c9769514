//! Tests that capture what mender logs. They live alone in this binary
//! and run one after another from a single test: tracing caches each
//! callsite's interest globally, so a thread-scoped subscriber can miss
//! events while other tests log on other threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Script, fail};
use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime};

#[test]
fn logs() {
    log_flood_is_capped();
    secrets_never_reach_the_logs();
    redis_password_never_reaches_the_logs();
    plugin_text_cannot_forge_log_lines();
    library_lines_pass_the_redacting_writer();
    json_lines_parse_and_hide_secrets();
}

fn log_flood_is_capped() {
    let lines = Arc::new(AtomicUsize::new(0));
    let counter = CountPluginLines(lines.clone());
    let subscriber =
        tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), counter);
    tracing::subscriber::with_default(subscriber, || {
        let toml = format!(
            "[limits]\nhook-timeout = \"30s\"\n[plugins.hostile]\npath = \"{}/hostile-strategy.wasm\"\nconfig = {{ attack = \"log-flood\" }}\n[services.default]\nstrategies = [\"hostile\"]\n",
            env!("MENDER_GUEST_DIR")
        );
        let rt = Runtime::builder()
            .config_str(&toml, "t.toml")
            .unwrap()
            .build()
            .unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let err = tokio
            .block_on(rt.call(CallSpec::new("api", "get"), |_| script.next()))
            .map(|r: Reply<String>| r.value)
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::Connect,
            "the plugin passed; the call failed on its own"
        );
        assert_eq!(rt.plugins()[0].faults, 0);
    });
    let n = lines.load(Ordering::SeqCst);
    // 32 lines kept, plus one warning that the rest were dropped.
    assert!(n <= 33, "{n} plugin log lines reached the subscriber");
    assert!(n >= 32, "{n}");
}

struct CountPluginLines(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountPluginLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "mender::plugin" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Collects everything tracing writes, at every level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// A subscriber that writes every level, without colour, into the
    /// returned buffer.
    fn subscriber() -> (Captured, impl tracing::Subscriber + Send + Sync) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (captured, subscriber)
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn secrets_never_reach_the_logs() {
    let (captured, subscriber) = Captured::subscriber();
    let secrets = [
        "ghp_0123456789abcdefghijABCDEFGHIJ",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "xoxb-1234567890-abcdefghij",
        "AKIAIOSFODNN7EXAMPLE",
        "hunter2-registered-token",
        "s3cretpw",
    ];
    tracing::subscriber::with_default(subscriber, || {
        let toml = r#"
[plugins.echo]
path = "{guests}/echo-strategy.wasm"
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "1ms", jitter = "none", kinds = { auth = { action = "refresh-credentials" } } }
[services.default]
strategies = ["backoff", "echo"]
"#
        .replace("{guests}", env!("MENDER_GUEST_DIR"));
        let rt = mender::Runtime::builder()
            .config_str(&toml, "test.toml")
            .unwrap()
            .secret("hunter2-registered-token")
            .credentials("github", |_s: String| async {
                Err("refresh endpoint said: bad client hunter2-registered-token".to_owned())
            })
            .build()
            .unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let messages = [
            (
                ErrorKind::Auth,
                "401 Authorization: Bearer ghp_0123456789abcdefghijABCDEFGHIJ",
            ),
            (
                ErrorKind::Auth,
                "openai said: invalid key sk-proj-abcdefghijklmnopqrstuvwx",
            ),
            (
                ErrorKind::Connect,
                "slack xoxb-1234567890-abcdefghij unreachable; aws AKIAIOSFODNN7EXAMPLE",
            ),
            (
                ErrorKind::Resource,
                "db postgres://app:s3cretpw@db:5432 full; token hunter2-registered-token",
            ),
        ];
        for (kind, msg) in messages {
            let script = Script::failing(Failure::new(kind, msg), 10);
            let _ = tokio
                .block_on(
                    rt.call(CallSpec::new("github", "get").idempotent(true), |_| {
                        script.next()
                    }),
                )
                .map(|r: Reply<String>| r.value);
        }
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("attempt failed"),
        "the test must capture the host's logs:\n{logs}"
    );
    assert!(logs.contains("[REDACTED]"), "{logs}");
    // Plugins' own lines pass when the filter lets them: the SDK asks the
    // host (`log.enabled`) before formatting, and the host says yes here.
    assert!(
        logs.contains("echo-strategy: admit get") && logs.contains("get attempt 1 failed (auth)"),
        "the plugins' lines are missing:\n{logs}"
    );
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

/// An unreachable Redis is reported once, with its URL but not its password.
fn redis_password_never_reaches_the_logs() {
    let (captured, subscriber) = Captured::subscriber();
    tracing::subscriber::with_default(subscriber, || {
        // Port 1 on loopback refuses at once.
        let toml = "[state]\nbackend = \"redis\"\nurl = \"redis://app:pw-hunter3@127.0.0.1:1/\"\n\
                    [plugins.breaker]\nbundled = \"circuit-breaker\"\nconfig = { lease = 0 }\n\
                    [services.default]\nstrategies = [\"breaker\"]\n";
        let rt = Runtime::builder()
            .config_str(toml, "t.toml")
            .unwrap()
            .build()
            .unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let script = Script::default();
        for _ in 0..3 {
            tokio
                .block_on(rt.call(CallSpec::new("api", "get"), |_| script.next()))
                .map(|r: Reply<String>| r.value)
                .unwrap();
        }
        assert!(!rt.state_status()[0].shared);
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logs.matches("redis state unreachable").count(),
        1,
        "one warning per outage:\n{logs}"
    );
    assert!(logs.contains("127.0.0.1:1"), "{logs}");
    assert!(!logs.contains("pw-hunter3"), "the password leaked:\n{logs}");
}

/// A plugin's log line and failure reason with `\n` and ANSI escapes: each
/// stays on its one line, escaped, and no escape byte reaches the log.
fn plugin_text_cannot_forge_log_lines() {
    let (captured, subscriber) = Captured::subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let toml = format!(
            "[limits]\nquarantine-after = 0\n[plugins.hostile]\npath = \"{}/hostile-strategy.wasm\"\n\
             config = {{ attack = \"log-injection\" }}\n[services.default]\nstrategies = [\"hostile\"]\n",
            env!("MENDER_GUEST_DIR")
        );
        let rt = Runtime::builder()
            .config_str(&toml, "t.toml")
            .unwrap()
            .build()
            .unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let script = Script::failing(fail(ErrorKind::Connect), 1);
        let err = tokio
            .block_on(rt.call(CallSpec::new("api", "get"), |_| script.next()))
            .map(|r: Reply<String>| r.value)
            .unwrap_err();
        // The plugin failed the call with its reason: escaped there too.
        assert!(
            err.reason.contains("failing\\n2026-12-02"),
            "{}",
            err.reason
        );
        assert!(
            !err.reason.contains('\n') && !err.reason.contains('\x1b'),
            "{}",
            err.reason
        );
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("innocent\\n2026-12-02"),
        "the plugin's line, escaped:\n{logs}"
    );
    assert!(
        !logs.contains('\x1b'),
        "an ANSI escape reached the log:\n{logs}"
    );
    for line in logs.lines() {
        assert!(
            !line.starts_with("2026-12-02T09:00:00.000000Z"),
            "a forged line:\n{logs}"
        );
    }
    assert!(logs.contains("\\u{1b}[31m"), "{logs}");
}

/// Lines from any crate, at any level, written through the redacting
/// writer the CLI installs (rmcp logs raw JSON-RPC at trace).
fn library_lines_pass_the_redacting_writer() {
    let captured = Captured::default();
    let mut redactor = mender::Redactor::default();
    redactor.add_secret("upstream-secret-42");
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(mender::RedactingWriter::new(move || sink.clone(), redactor))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::trace!(
            target: "rmcp::service",
            "received message: {{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{{\"code\":-32000,\"message\":\"auth failed for UPSTREAM-SECRET-42 with {{\\\"Authorization\\\":\\\"Bearer abc\\\\/def123456\\\"}}\"}}}}"
        );
        tracing::debug!(target: "redis", "connecting to redis://:cache-pass-7@10.0.0.5:6379/0");
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("rmcp::service"), "{logs}");
    for secret in ["UPSTREAM-SECRET-42", "def123456", "cache-pass-7"] {
        assert!(!logs.contains(secret), "{secret} leaked:\n{logs}");
    }
}

/// `--log-format json`: the same redacting writer in JSON mode. Every line
/// is one JSON object, even where a text redaction would cut through a
/// quote (a private key without its END line runs to the end of the
/// text), and no secret of the corpus is in any of them.
fn json_lines_parse_and_hide_secrets() {
    let captured = Captured::default();
    let mut redactor = mender::Redactor::default();
    redactor.add_secret("hunter2-registered-token");
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(mender::RedactingWriter::new(move || sink.clone(), redactor).json())
        .finish();
    let secrets = [
        "ghp_0123456789abcdefghijABCDEFGHIJ",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "hunter2-registered-token",
        "s3cretpw",
        "MIIEvQIBADANBgkqhkiG9w0",
        "opaque-field-value-9",
    ];
    tracing::subscriber::with_default(subscriber, || {
        let rt = common::runtime(
            "[plugins.backoff]\nbundled = \"exponential-backoff\"\n\
             config = { base = \"1ms\", jitter = \"none\" }\n\
             [services.default]\nstrategies = [\"backoff\"]\n",
        );
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        for msg in [
            "401 Authorization: Bearer ghp_0123456789abcdefghijABCDEFGHIJ",
            "db postgres://app:s3cretpw@db:5432 full; token hunter2-registered-token",
            "openai said \"invalid key sk-proj-abcdefghijklmnopqrstuvwx\"",
        ] {
            let script = Script::failing(Failure::new(ErrorKind::Connect, msg), 10);
            let _ = tokio
                .block_on(
                    rt.call(CallSpec::new("github", "get").idempotent(true), |_| {
                        script.next()
                    }),
                )
                .map(|r: Reply<String>| r.value);
        }
        tracing::warn!(
            token = "opaque-field-value-9",
            "a field named like a credential"
        );
        tracing::error!(target: "anything", "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0");
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("attempt failed"), "the host's logs:\n{logs}");
    assert!(logs.contains("[REDACTED]"), "{logs}");
    let mut lines = 0;
    for line in logs.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{logs}"));
        assert!(value["fields"]["message"].is_string(), "{line}");
        lines += 1;
    }
    assert!(lines > 5, "{logs}");
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} leaked:\n{logs}");
    }
}
