//! The admin listener (`--admin ADDR`) of the real binary, on loopback:
//! `/metrics` after the demo's scripted failures (read with a real
//! Prometheus text parser, checked against the demo's own summary),
//! `/readyz` flipping with a required upstream, `/status` equal to `mender
//! status --json`, JSON logs on the gateway's stderr, and a non-loopback
//! address refused.

#[path = "common/admin_gateway.rs"]
mod admin_gateway;
#[path = "common/tools.rs"]
mod tools;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use admin_gateway::{RawServer, Running, gateway, get, python, send};
use prometheus_parse::{Sample, Scrape, Value};

fn scrape(addr: SocketAddr) -> Scrape {
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a Prometheus text exposition")
}

/// The value of the sample of `family` whose labels include `labels`
/// (summed over the rest), or 0 when there is none.
fn value(scrape: &Scrape, family: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == family && has(s, labels))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{family}: not a counter or gauge: {other:?}"),
        })
        .sum()
}

fn has(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
}

/// The observations of the histograms of `family` whose labels include
/// `labels`, summed.
fn histogram_count(scrape: &Scrape, family: &str, labels: &[(&str, &str)]) -> u64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == family && has(s, labels))
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max) as u64,
            other => panic!("{family}: not a histogram: {other:?}"),
        })
        .sum()
}

/// Attempts that admission refused (`kind="rejected"`).
fn refused_attempts(scrape: &Scrape) -> u64 {
    value(scrape, "mender_attempts_total", &[("kind", "rejected")]) as u64
}

/// Every family in the exposition has a `# HELP` description.
fn described(scrape: &Scrape) {
    for s in &scrape.samples {
        // A histogram's sum and count are read as samples of their own.
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| s.metric.strip_suffix(suffix))
            .filter(|base| scrape.samples.iter().any(|h| h.metric == *base))
            .unwrap_or(&s.metric);
        assert!(
            scrape.docs.get(family).is_some_and(|d| !d.is_empty()),
            "{family} has no # HELP"
        );
    }
}

/// The numbers after `label` in the summary line that starts with it,
/// e.g. `calls  180  ok first try 92, …` → [180, 92, …].
fn numbers(out: &str, label: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn demo_metrics_count_what_the_script_did() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["demo", "--seed", "7", "--quiet", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running mender demo");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let _running = Running(child);
    // Read until the demo says it is over and only the listener remains.
    let mut out = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        out += &line;
        out.push('\n');
        if line.starts_with("admin: the demo is over") {
            break;
        }
    }
    let addr: SocketAddr = out
        .lines()
        .find_map(|l| l.strip_prefix("admin: http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin address in:\n{out}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback());
    assert!(out.contains("admin: the demo is over"), "{out}");

    let calls = numbers(&out, "calls");
    let (total, ok_first, ok_retry, fallback, failed) =
        (calls[0], calls[1], calls[2], calls[3], calls[4]);
    let attempts = numbers(&out, "attempts");
    let (attempts, retries, refreshes, refused) =
        (attempts[0], attempts[1], attempts[2], attempts[3]);
    // The script exercises every outcome, so no count below is checked
    // against a zero that any wiring would produce.
    for (what, n) in [
        ("ok first try", ok_first),
        ("ok after retry", ok_retry),
        ("fallback", fallback),
        ("failed", failed),
        ("refused", refused),
        ("refreshes", refreshes),
    ] {
        assert!(n > 0, "seed 7 should produce some {what}:\n{out}");
    }

    let (code, body) = get(addr, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    assert_eq!(
        get(addr, "/readyz").0,
        200,
        "the demo has no upstream to wait for"
    );
    assert_eq!(get(addr, "/status").0, 404, "no gateway in the demo");

    // The status page and what it polls: the demo's runtime, its last
    // minute (the whole script ran in virtual time, a moment of real
    // time) and its latest decisions.
    let (code, page) = get(addr, "/");
    assert_eq!(code, 200);
    assert!(
        page.contains("/api/activity") && page.contains("<table"),
        "{page}"
    );
    let (code, body) = get(addr, "/api/activity");
    assert_eq!(code, 200, "{body}");
    let activity: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(activity["kind"], "demo");
    assert_eq!(activity["upstreams"], serde_json::Value::Null);
    let service = &activity["services"][0];
    assert_eq!(service["service"], "demo", "{body}");
    assert_eq!(service["calls"], total, "{body}");
    assert_eq!(service["fallbacks"], fallback, "{body}");
    assert_eq!(service["failures"], failed, "{body}");
    assert_eq!(service["retries"], retries, "{body}");
    assert!(
        service["p50_ms"].as_f64().is_some()
            && service["p99_ms"].as_f64() >= service["p50_ms"].as_f64()
    );
    let decisions = activity["decisions"].as_array().unwrap();
    // Every retry is a decision, and the ring holds at most its bound.
    assert!(decisions.len() <= mender::RECENT_DECISIONS);
    assert!(decisions.len() as u64 >= retries.min(mender::RECENT_DECISIONS as u64));
    let newest = decisions[0]["call"].as_u64().unwrap();
    assert!(
        decisions.iter().all(|d| d["call"].as_u64() <= Some(newest)),
        "newest first"
    );
    assert!(
        decisions.iter().any(|d| d["decision"] == "retry"
            && d["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("demo#") && t.ends_with("[backoff]"))),
        "{body}"
    );
    let plugins: Vec<&str> = activity["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        plugins.contains(&"breaker") && plugins.contains(&"backoff"),
        "{plugins:?}"
    );

    let m = scrape(addr);
    let demo = ("service", "demo");
    let calls = |outcome| value(&m, "mender_calls_total", &[demo, ("outcome", outcome)]) as u64;
    assert_eq!(calls("ok"), ok_first, "{out}");
    assert_eq!(calls("retried_ok"), ok_retry, "{out}");
    assert_eq!(calls("fallback"), fallback, "{out}");
    assert_eq!(calls("failed") + calls("rejected"), failed, "{out}");
    assert!(calls("rejected") > 0, "an open circuit rejects some calls");
    assert_eq!(
        value(&m, "mender_calls_total", &[demo]) as u64,
        total,
        "every call counted once"
    );

    // Attempts: one per answer and one per handled failure, the demo's
    // count; admission refusals are the `rejected` kind.
    assert_eq!(value(&m, "mender_attempts_total", &[demo]) as u64, attempts);
    let attempts_of = |kind| value(&m, "mender_attempts_total", &[demo, ("kind", kind)]) as u64;
    assert_eq!(attempts_of("rejected"), refused);
    assert_eq!(attempts_of("ok"), ok_first + ok_retry);
    assert!(attempts_of("auth") >= refreshes);

    // Decisions: the guardrails may refuse a retry a plugin asked for, so
    // the plugins asked at least as often as the demo retried.
    let decided = |plugin, decision| {
        value(
            &m,
            "mender_decisions_total",
            &[demo, ("plugin", plugin), ("decision", decision)],
        ) as u64
    };
    assert!(decided("backoff", "retry") >= retries, "{out}");
    assert!(decided("backoff", "refresh") >= refreshes, "{out}");
    assert!(decided("breaker", "reject") > 0);
    assert_eq!(
        decided("static", "fallback") + decided("cached", "fallback"),
        fallback,
        "every fallback served was a handler's answer"
    );

    // One duration per call, in the configured buckets.
    let hist = m
        .samples
        .iter()
        .find(|s| s.metric == "mender_call_duration_seconds" && has(s, &[demo]))
        .expect("the call duration histogram");
    match &hist.value {
        Value::Histogram(buckets) => {
            let inf = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert_eq!(inf as u64, total, "{buckets:?}");
            assert!(buckets.iter().any(|b| b.less_than == 0.25));
        }
        other => panic!("a histogram, not {other:?}"),
    }

    // Every family carries a `# HELP` line.
    described(&m);

    // Attempt durations: one per attempt that ran (admission refusals
    // never start one).
    assert_eq!(
        histogram_count(&m, "mender_attempt_duration_seconds", &[demo]),
        attempts - refused_attempts(&m),
        "{out}"
    );
    // Calls that ended without an answer, by their last failure's kind:
    // the rejected ones are exactly the calls an open circuit turned away.
    assert_eq!(value(&m, "mender_failures_total", &[demo]) as u64, failed);
    assert_eq!(
        value(&m, "mender_failures_total", &[demo, ("kind", "rejected")]) as u64,
        calls("rejected")
    );
    // Every hook call is timed and is one decision, per plugin.
    for plugin in ["breaker", "backoff", "cached", "static"] {
        let p = ("plugin", plugin);
        assert_eq!(
            histogram_count(&m, "mender_hook_duration_seconds", &[demo, p]),
            value(&m, "mender_decisions_total", &[demo, p]) as u64,
            "{plugin}"
        );
    }
    // The closed breaker leases admissions: a lease comes with some of its
    // `allow`s (none in half-open), and admits attempts without a hook.
    let breaker = [demo, ("plugin", "breaker")];
    let granted = value(&m, "mender_leases_granted_total", &breaker) as u64;
    assert!(
        granted > 0 && granted <= decided("breaker", "allow"),
        "{granted}"
    );
    assert!(value(&m, "mender_lease_admissions_total", &breaker) > 0.0);
    // The sandbox's counts are the runtime's (the page's) own.
    for p in activity["plugins"].as_array().unwrap() {
        let plugin = ("plugin", p["name"].as_str().unwrap());
        assert_eq!(
            value(&m, "mender_sandbox_faults_total", &[plugin]),
            p["faults"].as_f64().unwrap()
        );
        assert_eq!(
            value(&m, "mender_sandbox_quarantines_total", &[plugin]),
            p["quarantines"].as_f64().unwrap()
        );
    }
    assert_eq!(value(&m, "mender_reload_generation", &[]), 1.0);
    assert_eq!(
        value(&m, "mender_reloads_total", &[("result", "failed")]),
        0.0
    );

    // The breaker's own counters, as the summary adds them up
    // (`circuit transitions  closed 2, half-open 3, open 3`).
    let opened = value(
        &m,
        "mender_plugin_transitions_to_open",
        &[demo, ("plugin", "breaker")],
    ) as u64;
    assert!(opened > 0);
    let transitions = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("circuit transitions"))
        .unwrap_or_else(|| panic!("no transitions in:\n{out}"));
    assert!(
        transitions
            .split(',')
            .any(|t| t.trim() == format!("open {opened}")),
        "{transitions}"
    );
}

#[test]
fn a_public_admin_address_needs_the_opt_in() {
    for args in [
        &["demo", "--quiet", "--admin", "0.0.0.0:0"][..],
        &[
            "mcp-proxy",
            "--config",
            "/nonexistent.toml",
            "--admin",
            "0.0.0.0:0",
        ],
    ] {
        // A listener that is wrongly started serves until killed: the
        // refusal must come at once, not whenever the test gives up.
        let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?}: still running, not refused");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(err.contains("--admin-public"), "{err}");
    }
    // With the opt-in the demo listens (then the test stops it).
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["demo", "--quiet", "--admin", "0.0.0.0:0", "--admin-public"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _running = Running(child);
    assert!(first.starts_with("admin: http://0.0.0.0:"), "{first}");
}

const TOKEN: &str = "raw-token-7c4e0b93d1";

/// The raw server with the token and `extra_env`; restarted after 1.5 s,
/// slow enough that the test sees it down.
fn raw(extra_env: &str) -> RawServer<'_> {
    RawServer {
        token: TOKEN,
        extra_env,
        restart_backoff: "{ base = \"1500ms\", max = \"3s\" }",
    }
}

/// Polls `/readyz` until it answers `code`.
fn wait_readyz(addr: SocketAddr, code: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = get(addr, "/readyz");
        if got == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got}, not {code}: {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn gateway_readiness_status_metrics_and_json_logs() {
    let Some(python) = python() else { return };
    let dir = tempfile::Builder::new()
        .prefix("adm-")
        .tempdir_in("/tmp")
        .unwrap();
    let (_running, mut stdin, addr, logs) = gateway(dir.path(), &python, raw(""));

    // Before the client's `initialize` the upstream has not started.
    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    let waiting: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(waiting["ready"], false);
    assert_eq!(waiting["not_ready"][0]["name"], "raw", "{body}");
    assert_eq!(get(addr, "/healthz").0, 200);

    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "admin-test", "version": "0"}}}),
    );
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    wait_readyz(addr, 200, Duration::from_secs(20));

    // One call that answers, one the upstream refuses (its error echoes
    // the token, which must not reach the logs).
    for (id, tool) in [(2, "echo_secret"), (3, "reject")] {
        send(
            &mut stdin,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}}),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(addr);
        if value(&m, "mender_calls_total", &[("service", "raw")]) >= 2.0
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let raw = ("service", "raw");
    assert_eq!(
        value(&m, "mender_calls_total", &[raw, ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        value(&m, "mender_calls_total", &[raw, ("outcome", "failed")]),
        1.0
    );
    let server = ("server", "raw");
    described(&m);
    // Both calls are answered: none is in the pipeline any more.
    assert_eq!(value(&m, "mender_upstream_in_flight", &[server]), 0.0);
    assert_eq!(value(&m, "mender_reload_generation", &[]), 1.0);
    assert_eq!(value(&m, "mender_upstream_up", &[server]), 1.0);
    assert_eq!(value(&m, "mender_upstream_tools", &[server]), 4.0);
    assert_eq!(value(&m, "mender_upstream_restarts_total", &[server]), 0.0);

    // `/status` is `mender status --json`, field for field (but the clocks).
    let (code, body) = get(addr, "/status");
    assert_eq!(code, 200, "{body}");
    let http: serde_json::Value = serde_json::from_str(&body).unwrap();
    let socket = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["status", "--json", "--socket"])
        .arg(dir.path().join("status.sock"))
        .output()
        .unwrap();
    assert!(socket.status.success());
    let cli: serde_json::Value = serde_json::from_slice(&socket.stdout).unwrap();
    assert_eq!(without_clocks(http.clone()), without_clocks(cli));
    let typed: mender_mcp::GatewayStatus = serde_json::from_value(http.clone()).unwrap();
    assert_eq!(typed.upstreams[0].calls, 2);
    let pid = typed.upstreams[0].pid.expect("the upstream's pid");

    // The required upstream dies: not ready until it is back.
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.unwrap().success());
    let body = wait_readyz(addr, 503, Duration::from_secs(10));
    assert!(body.contains("\"raw\""), "{body}");
    assert_eq!(value(&scrape(addr), "mender_upstream_up", &[server]), 0.0);
    wait_readyz(addr, 200, Duration::from_secs(20));
    let m = scrape(addr);
    assert_eq!(value(&m, "mender_upstream_up", &[server]), 1.0);
    assert_eq!(value(&m, "mender_upstream_restarts_total", &[server]), 1.0);

    // A call in the pipeline (the flaky tool fails, waits, and is retried)
    // is in flight until it is answered.
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "flaky_progress", "arguments": {}}}),
    );
    let in_flight = || value(&scrape(addr), "mender_upstream_in_flight", &[server]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight() != 1.0 {
        assert!(Instant::now() < deadline, "the call never showed in flight");
        std::thread::sleep(Duration::from_millis(5));
    }
    while in_flight() != 0.0 {
        assert!(Instant::now() < deadline, "the call stayed in flight");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Every log line so far is one JSON object, and the token the upstream
    // echoed in its error is in none of them.
    drop(stdin);
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(lines.len() > 3, "{lines:?}");
    for line in &lines {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
        assert!(!line.contains(TOKEN), "the token leaked: {line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("call failed")),
        "the failed call is logged: {lines:#?}"
    );
    // A line logged inside an attempt carries the attempt's span, with the
    // same fields as the exported span.
    let handled: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["fields"]["message"] == "attempt handled")
        .unwrap_or_else(|| panic!("no `attempt handled` line: {lines:#?}"));
    let span = &handled["span"];
    assert_eq!(span["name"], "mender.attempt", "{handled}");
    assert_eq!(span["service"], "raw", "{handled}");
    assert_eq!(span["attempt"], 1, "{handled}");
    assert_eq!(span["decision"], "fail", "{handled}");
}

/// Waits for a line on `rx` that `wanted` accepts, within 20 s.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line {what} ({e})"),
        }
    }
}

/// `mender logs` through the status socket (and `/logs`): a server's
/// stderr kept, redacted, timestamped, its error codes marked; `--follow`
/// sees new lines; `--since` filters; an unknown server is named.
#[test]
fn mender_logs_follows_a_servers_stderr() {
    let Some(python) = python() else { return };
    let dir = tempfile::Builder::new()
        .prefix("logs-")
        .tempdir_in("/tmp")
        .unwrap();
    let (_running, mut stdin, addr, _gateway_log) =
        gateway(dir.path(), &python, raw(", STDERR_ON_CALL = \"1\""));
    let socket = dir.path().join("status.sock");
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "logs-test", "version": "0"}}}),
    );
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    wait_readyz(addr, 200, Duration::from_secs(20));
    let call = |stdin: &mut ChildStdin, id: u64, tool: &str| {
        send(
            stdin,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}}),
        );
    };
    call(&mut stdin, 2, "echo_secret");

    let mut follow = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["logs", "raw", "--follow", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(follow.stdout.take().unwrap());
    let _follow = Running(follow);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = wait_line(&rx, "for echo_secret", |l| l.contains("echo_secret"));
    // `2026-12-07T08:03:02.123Z raw [ECONNREFUSED] raw_server: …`
    assert!(
        first.contains(" raw [ECONNREFUSED] raw_server: echo_secret"),
        "{first}"
    );
    assert!(
        first.starts_with("20") && first[..24].ends_with('Z'),
        "{first}"
    );
    assert!(
        first.contains("[REDACTED]") && !first.contains(TOKEN),
        "{first}"
    );
    // A line written after `--follow` started reaches it.
    call(&mut stdin, 3, "reject");
    let second = wait_line(&rx, "for reject", |l| l.contains("raw_server: reject"));
    assert!(!second.contains(TOKEN), "{second}");

    // `/logs` serves the same lines as JSON.
    let (code, body) = get(addr, "/logs?server=raw");
    assert_eq!(code, 200, "{body}");
    let lines: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines = lines["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0]["codes"], serde_json::json!(["ECONNREFUSED"]));
    assert!(!body.contains(TOKEN));
    assert_eq!(get(addr, "/logs?server=nosuch").0, 404);

    // `--since`: both lines are within a minute, neither within the last
    // half second once a second has passed.
    std::thread::sleep(Duration::from_millis(1500));
    let logs = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mender"))
            .arg("logs")
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap()
    };
    let recent = logs(&["--since", "1m"]);
    assert!(recent.status.success());
    let text = String::from_utf8_lossy(&recent.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    let none = logs(&["--since", "500ms"]);
    assert!(none.status.success());
    assert_eq!(String::from_utf8_lossy(&none.stdout), "");

    let unknown = logs(&["nosuch"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no server `nosuch`") && err.contains("raw"),
        "{err}"
    );
}

/// A status with the fields that move between two reads (uptime, time in
/// a state) taken out.
fn without_clocks(mut status: serde_json::Value) -> serde_json::Value {
    status.as_object_mut().unwrap().remove("uptime_s");
    for u in status["upstreams"].as_array_mut().unwrap() {
        u.as_object_mut().unwrap().remove("state_for_s");
    }
    status
}

/// `mender demo --watch --admin`: real time, a few calls, then the
/// listener stays for the scrape.
#[test]
fn watch_mode_serves_the_admin_endpoints_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.toml");
    let printed = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["demo", "--print-config"])
        .output()
        .unwrap();
    std::fs::write(&config, &printed.stdout).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["demo", "--watch", "--calls", "3", "--every", "10ms"])
        .args(["--admin", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let _running = Running(child);
    let mut addr = None;
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("admin: http://") {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("admin: the demo is over") {
            break;
        }
    }
    let addr: SocketAddr = addr.expect("the admin address").parse().unwrap();
    let m = scrape(addr);
    assert_eq!(value(&m, "mender_calls_total", &[("service", "demo")]), 3.0);
    // The status page's data is the watched runtime's.
    let activity: serde_json::Value = serde_json::from_str(&get(addr, "/api/activity").1).unwrap();
    assert_eq!(activity["services"][0]["calls"], 3, "{activity}");
}

/// A `MENDER_LOG_FORMAT` that is neither `text` nor `json` is refused, so
/// a collector expecting JSON never silently receives text.
#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["plugins"])
        .env("MENDER_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MENDER_LOG_FORMAT=yaml"), "{err}");
    let flag = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["--log-format", "json", "plugins"])
        .output()
        .unwrap();
    assert!(flag.status.success());
}
