//! Traces from the real binary: `mender mcp-proxy` with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set to a collector stand-in in this test
//! (OTLP/HTTP, protobuf, decoded with `opentelemetry-proto`), in front of
//! `tests/mcp/raw_server.py`. A client call carrying a W3C `traceparent`
//! fails once and is retried: the spans keep the client's trace id, the
//! gateway's span is the client span's child, `mender.call` the gateway's,
//! each `mender.attempt` the call's, with the attempt, kind, decision,
//! plugin and delay recorded; the upstream saw each attempt's own
//! `traceparent`; and a token the upstream echoes is in no span.

#[path = "common/admin_gateway.rs"]
#[allow(dead_code)]
mod admin_gateway;
#[path = "common/tools.rs"]
mod tools;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use admin_gateway::{Running, python, send};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tools::workspace;

/// The credential the upstream echoes in a failed tool's text.
const TOKEN: &str = "otlp-test-token-5c1d0e7a9b";
/// The client's span: its trace must carry through.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A collector stand-in: answers every `POST /v1/traces` with 200 and
/// hands each decoded request to the channel.
fn collector() -> (String, mpsc::Receiver<ExportTraceServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    (url, rx)
}

/// Serves one connection's requests (the exporter keeps it alive).
fn serve(stream: TcpStream, tx: &mpsc::Sender<ExportTraceServiceRequest>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let decoded = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("an OTLP ExportTraceServiceRequest");
        let _ = tx.send(decoded);
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attributes as strings (ints printed).
fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

#[test]
fn spans_reach_the_collector_in_the_clients_trace() {
    let Some(python) = python() else { return };
    let dir = tempfile::Builder::new()
        .prefix("otlp-")
        .tempdir_in("/tmp")
        .unwrap();
    let (url, received) = collector();
    let config = dir.path().join("mender.toml");
    let trace_file = dir.path().join("traces");
    std::fs::write(
        &config,
        format!(
            "[mcp]\nstatus-socket = {socket:?}\n\n[mcp.servers.raw]\ncommand = {python:?}\n\
             args = [{server:?}]\nenv = {{ API_TOKEN = \"{TOKEN}\", RUNS_FILE = {runs:?}, TRACE_FILE = {trace_file:?} }}\n\n\
             [plugins.backoff]\nbundled = \"exponential-backoff\"\n\
             config = {{ base = \"50ms\", jitter = \"none\", max-attempts = 3 }}\n\n\
             [services.default]\nstrategies = [\"backoff\"]\n",
            socket = dir.path().join("status.sock"),
            server = workspace().join("tests/mcp/raw_server.py"),
            runs = dir.path().join("runs"),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["mcp-proxy", "--config"])
        .arg(&config)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("MENDER_LOG", "warn,rmcp=error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running mender mcp-proxy");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (answers_tx, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = answers_tx.send(line);
        }
    });
    let mut running = Running(child);
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "otlp-test", "version": "0"}}}),
    );
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    // `flaky_progress` fails its first run (503) and is read-only, so it
    // is retried; `fail_secret` fails with the token in its text.
    for (id, tool) in [(2, "flaky_progress"), (3, "fail_secret")] {
        send(
            &mut stdin,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {}, "_meta": {"traceparent": traceparent}}}),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = answers
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the gateway answers the call");
            let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
            if answer["id"] == id {
                break;
            }
        }
    }
    // The client leaves; the gateway flushes its spans as it exits.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }

    let spans: Vec<Span> = received
        .try_iter()
        .flat_map(|r| r.resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let exported = format!("{spans:#?}");
    assert!(
        !exported.contains(TOKEN),
        "the token was exported: {exported}"
    );

    // The gateway's span for the call: a server span in the client's
    // trace, the client's span its parent.
    let gateway = spans
        .iter()
        .find(|s| s.name == "tools/call flaky_progress")
        .unwrap_or_else(|| panic!("no gateway span in {names:?}"));
    assert_eq!(hex(&gateway.trace_id), CLIENT_TRACE);
    assert_eq!(hex(&gateway.parent_span_id), CLIENT_SPAN);
    let attrs = attributes(gateway);
    assert_eq!(attrs["mcp.method.name"], "tools/call");
    assert_eq!(attrs["mcp.server"], "raw");
    assert_eq!(attrs["gen_ai.tool.name"], "flaky_progress");

    // The core's call span under it, and two attempts under that.
    let call = spans
        .iter()
        .find(|s| s.name == "mender.call" && s.parent_span_id == gateway.span_id)
        .unwrap_or_else(|| panic!("no mender.call under the gateway's span: {names:?}"));
    assert_eq!(hex(&call.trace_id), CLIENT_TRACE);
    let attrs = attributes(call);
    assert_eq!(attrs["service"], "raw");
    assert_eq!(attrs["operation"], "tools/call:flaky_progress");
    assert_eq!(attrs["outcome"], "retried_ok");
    assert_eq!(attrs["attempts"], "2");
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "mender.attempt" && s.parent_span_id == call.span_id)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "{names:?}");
    let first = attributes(attempts[0]);
    assert_eq!(first["attempt"], "1");
    assert_eq!(first["service"], "raw");
    assert_eq!(first["kind"], "resource", "{first:?}");
    assert_eq!(first["decision"], "retry");
    assert_eq!(first["plugin"], "backoff");
    assert_eq!(first["delay_ms"], "50", "{first:?}");
    assert!(first["error"].contains("503"), "{first:?}");
    // What was logged inside the attempt is one of its events.
    assert!(
        attempts[0]
            .events
            .iter()
            .any(|e| e.name == "attempt handled"),
        "{:?}",
        attempts[0].events
    );
    let second = attributes(attempts[1]);
    assert_eq!(second["attempt"], "2");
    assert_eq!(second["kind"], "ok");
    assert!(!second.contains_key("decision"), "{second:?}");

    // The upstream saw each attempt's own context in `_meta.traceparent`.
    let seen: Vec<serde_json::Value> = std::fs::read_to_string(&trace_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flaky: Vec<&str> = seen
        .iter()
        .filter(|s| s["tool"] == "flaky_progress")
        .map(|s| s["traceparent"].as_str().expect("a traceparent upstream"))
        .collect();
    assert_eq!(flaky.len(), 2, "{seen:?}");
    for (tp, attempt) in flaky.iter().zip(&attempts) {
        assert_eq!(
            *tp,
            format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id))
        );
    }

    // The call that failed with the token: its attempt's error is there,
    // redacted.
    let failed = spans
        .iter()
        .find(|s| s.name == "tools/call fail_secret")
        .unwrap_or_else(|| panic!("no gateway span for fail_secret in {names:?}"));
    let call = spans
        .iter()
        .find(|s| s.name == "mender.call" && s.parent_span_id == failed.span_id)
        .unwrap();
    assert_eq!(attributes(call)["outcome"], "failed");
    let attempt = spans
        .iter()
        .find(|s| s.name == "mender.attempt" && s.parent_span_id == call.span_id)
        .unwrap();
    let attrs = attributes(attempt);
    assert!(attrs["error"].contains("[REDACTED]"), "{attrs:?}");
    assert_eq!(attrs["decision"], "fail");
}
