//! A real `mender mcp-proxy` with its admin listener, in front of
//! `tests/mcp/raw_server.py`, for the tests that read the admin endpoints
//! (`tests/admin.rs`) and the status page (`tests/status_page.rs`); and a
//! bare HTTP GET to read them with.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::tools::{Suite, require_or_skip, workspace};

/// Kills the child when the test ends, passing or not.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP GET on loopback: (status code, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
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
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head}"));
    // `Connection: close` answers are not chunked by hyper when the length
    // is known; the routes all answer with a whole body.
    (code, body.to_owned())
}

/// The Python that runs `raw_server.py` (`None`: skipped, or failed when
/// the MCP suites are required).
pub fn python() -> Option<PathBuf> {
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

/// How the raw server is configured.
pub struct RawServer<'a> {
    /// Its `API_TOKEN`, a credential that must never show.
    pub token: &'a str,
    /// More `env` entries, as TOML (`, NAME = "value"`).
    pub extra_env: &'a str,
    /// Its `restart-backoff` table: slow enough for a test to see it down.
    pub restart_backoff: &'a str,
}

/// A gateway in front of `raw_server.py`, logging JSON at debug, with its
/// admin listener on a free port; its stderr lines arrive on the channel
/// (drain it, or the gateway blocks on a full pipe).
pub fn gateway(
    dir: &Path,
    python: &Path,
    raw: RawServer<'_>,
) -> (Running, ChildStdin, SocketAddr, mpsc::Receiver<String>) {
    let config = dir.join("mender.toml");
    let server = workspace().join("tests/mcp/raw_server.py");
    std::fs::write(
        &config,
        format!(
            "[mcp]\nstatus-socket = {socket:?}\n\n[mcp.servers.raw]\ncommand = {python:?}\n\
             args = [{server:?}]\nenv = {{ API_TOKEN = \"{token}\", RUNS_FILE = {runs:?}{extra_env} }}\n\
             restart-backoff = {backoff}\n",
            socket = dir.join("status.sock"),
            runs = dir.join("runs"),
            token = raw.token,
            extra_env = raw.extra_env,
            backoff = raw.restart_backoff,
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender"))
        .args(["mcp-proxy", "--config"])
        .arg(&config)
        .env("MENDER_ADMIN", "127.0.0.1:0")
        .env("MENDER_LOG_FORMAT", "json")
        .env("MENDER_LOG", "debug,rmcp=error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mender mcp-proxy");
    let stdin = child.stdin.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // The client's answers are read (and dropped) so the pipe never fills.
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
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        if let Some(addr) = json["fields"]["admin"].as_str() {
            break addr.parse().unwrap();
        }
    };
    (running, stdin, addr, rx)
}

/// Sends one JSON-RPC message to the gateway's stdin.
pub fn send(stdin: &mut ChildStdin, message: serde_json::Value) {
    writeln!(stdin, "{message}").unwrap();
    stdin.flush().unwrap();
}
