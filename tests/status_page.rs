//! The admin listener's status page in a real browser: a headless
//! Chromium loads `/` from a gateway in front of a real server
//! (`tests/mcp/raw_server.py`), runs the page's script, and the test reads
//! the DOM it built (`--dump-dom`): the upstream ready, then down or
//! restarting after `kill -9`, then ready again with one restart; the
//! failed call's decision listed, the server's token nowhere. A screenshot
//! is saved to `target/status-page.png`.
//!
//! Needs `chromium` (`./test` installs Debian's and sets
//! `MENDER_REQUIRE_BROWSER=1`) and `python3`; without them the test prints
//! `skipped: …` and passes, unless its `MENDER_REQUIRE_*` variable is 1.

#[path = "common/tools.rs"]
mod tools;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tools::{Suite, require_or_skip, workspace};

const TOKEN: &str = "page-token-5b1e93c0aa";

/// Kills the child when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium with a profile of its own.
struct Browser {
    exe: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn find() -> Option<Browser> {
        let exe = std::env::var_os("MENDER_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("chromium"));
        let works = Command::new(&exe)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !works {
            require_or_skip(
                Suite::Browser,
                "chromium is not on the PATH (apt-get install chromium, or set MENDER_CHROMIUM)",
            );
            return None;
        }
        Some(Browser {
            exe,
            profile: tempfile::tempdir().unwrap(),
        })
    }

    fn run(&self, url: &str, extra: &[String]) -> String {
        let out = Command::new(&self.exe)
            .args([
                "--headless",
                // Root in a container has no user namespace to sandbox in;
                // the page is our own, from loopback.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1200,1000",
                // Long enough for the first poll's answer; the page renders
                // as soon as it arrives.
                "--virtual-time-budget=2500",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(extra)
            .arg(url)
            .stderr(Stdio::null())
            .output()
            .expect("running chromium");
        assert!(out.status.success(), "chromium failed: {:?}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The DOM after the page's script ran.
    fn dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".to_owned()])
    }
}

fn python() -> Option<PathBuf> {
    let found = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        require_or_skip(
            Suite::Mcp,
            "python3 (for tests/mcp/raw_server.py) is not on the PATH",
        );
    }
    found
}

/// One HTTP GET on loopback: the body.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connecting to the admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    body.to_owned()
}

/// A gateway in front of `raw_server.py` with its admin listener.
fn gateway(dir: &Path, python: &Path) -> (Running, ChildStdin, SocketAddr) {
    let config = dir.join("mender.toml");
    let server = workspace().join("tests/mcp/raw_server.py");
    std::fs::write(
        &config,
        format!(
            "[mcp]\nstatus-socket = {socket:?}\n\n[mcp.servers.raw]\ncommand = {python:?}\n\
             args = [{server:?}]\nenv = {{ API_TOKEN = \"{TOKEN}\", RUNS_FILE = {runs:?} }}\n\
             # Slow enough that a browser sees the upstream down.\n\
             restart-backoff = {{ base = \"4s\", max = \"4s\" }}\n",
            socket = dir.join("status.sock"),
            runs = dir.join("runs"),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["mcp-proxy", "--admin", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("MENDER_LOG_FORMAT", "json")
        .env("MENDER_LOG", "info,rmcp=error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mender mcp-proxy");
    let stdin = child.stdin.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || stdout.lines().count());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the gateway logs its admin address");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = json["fields"]["admin"].as_str() {
            break addr.parse().unwrap();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || rx.iter().count());
    (running, stdin, addr)
}

fn send(stdin: &mut ChildStdin, message: serde_json::Value) {
    writeln!(stdin, "{message}").unwrap();
    stdin.flush().unwrap();
}

/// The `data-state` of the upstream row `name` in `dom`.
fn upstream_state<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let row = format!("data-upstream=\"{name}\" data-state=\"");
    let at = dom.find(&row)? + row.len();
    dom[at..].split('"').next()
}

/// Loads the page until the upstream's row shows a state `wanted` accepts.
fn wait_for_state(browser: &Browser, url: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dom = browser.dom(url);
        let state = upstream_state(&dom, "raw").map(str::to_owned);
        if state.as_deref().is_some_and(&wanted) {
            return dom;
        }
        assert!(
            Instant::now() < deadline,
            "the page kept showing the upstream as {state:?}:\n{dom}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_page_shows_an_upstream_go_down_and_come_back() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let Some(python) = python() else { return };
    let dir = tempfile::Builder::new()
        .prefix("page-")
        .tempdir_in("/tmp")
        .unwrap();
    let (_running, mut stdin, addr) = gateway(dir.path(), &python);
    let url = format!("http://{addr}/");

    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "page-test", "version": "0"}}}),
    );
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    let dom = wait_for_state(&browser, &url, |s| s == "ready");
    assert!(dom.contains("data-loaded=\"yes\""), "{dom}");

    // One answered call and one the upstream refuses; its error echoes the
    // token, which the page must show redacted.
    for (id, tool) in [(2, "echo_secret"), (3, "reject")] {
        send(
            &mut stdin,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}}),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let dom = loop {
        let dom = browser.dom(&url);
        if dom.contains("data-decision=\"fail\"") || Instant::now() > deadline {
            break dom;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(dom.contains("data-service=\"raw\""), "{dom}");
    assert!(dom.contains("data-decision=\"fail\""), "{dom}");
    assert!(dom.contains("raw#"), "the decision names the call: {dom}");
    assert!(!dom.contains(TOKEN), "the token reached the page: {dom}");

    // The upstream is killed: the page shows it down (or restarting), then
    // back, with the restart counted.
    let status: mender_mcp::GatewayStatus = serde_json::from_str(&get(addr, "/status")).unwrap();
    let pid = status.upstreams[0].pid.expect("the upstream's pid");
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.unwrap().success());
    let dom = wait_for_state(&browser, &url, |s| s != "ready");
    let state = upstream_state(&dom, "raw").unwrap();
    assert!(
        ["down", "restarting", "starting"].contains(&state),
        "{state}"
    );
    wait_for_state(&browser, &url, |s| s == "ready");

    // A picture for the docs, after the trouble: the artefact CI keeps.
    let shot = workspace().join("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    browser.run(&url, &[format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
