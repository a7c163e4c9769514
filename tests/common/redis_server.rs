//! A real `redis-server` for tests: started on a free loopback port, killed
//! on drop, restartable on the same port (to test an outage and recovery).
//!
//! Without `redis-server` installed the tests print a clear skip line,
//! unless `MENDER_REQUIRE_REDIS=1` (set by `./test`), which fails them.
//! Included with `#[path]` (by tests/redis.rs and host/benches/redis_state.rs);
//! the includer provides `tools` (tests/common/tools.rs) at its crate root.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{Suite, require_or_skip};

/// A running (or stopped) redis-server owned by the test.
pub struct RedisServer {
    pub port: u16,
    /// The TLS port, for a server started with `start_tls_or_skip`.
    pub tls_port: Option<u16>,
    /// Arguments beyond the port and the no-persistence ones.
    extra: Vec<String>,
    child: Option<Child>,
}

/// How long a fresh redis-server may take to accept connections: it starts
/// in milliseconds, but CI machines are busy.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisServer {
    /// Starts a server, or returns `None` (after printing why) when
    /// `redis-server` is not installed and Redis is not required.
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        if !installed(test) {
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            tls_port: None,
            extra: Vec::new(),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// A server started with `extra` arguments (a cluster node's).
    pub fn start_with_or_skip(test: &str, extra: Vec<String>) -> Option<RedisServer> {
        if !installed(test) {
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            tls_port: None,
            extra,
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// A server that also serves TLS on `tls_port`, with `cert` and `key`
    /// (signed by `ca`); its clients need no certificate of their own. The
    /// plain port stays open, for the checks and `client()`.
    pub fn start_tls_or_skip(
        test: &str,
        cert: &Path,
        key: &Path,
        ca: &Path,
    ) -> Option<RedisServer> {
        if !installed(test) {
            return None;
        }
        let tls_port = free_port();
        let mut extra = vec!["--tls-port".to_owned(), tls_port.to_string()];
        for (flag, file) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", ca),
        ] {
            extra.push(flag.to_owned());
            extra.push(file.display().to_string());
        }
        extra.extend(["--tls-auth-clients".to_owned(), "no".to_owned()]);
        let mut server = RedisServer {
            port: free_port(),
            tls_port: Some(tls_port),
            extra,
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// `rediss://localhost:TLS_PORT/` (the name the test certificate holds).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a server started with TLS");
        format!("rediss://localhost:{port}/")
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let began = Instant::now();
        while self.ping().is_err() {
            assert!(
                began.elapsed() < START_TIMEOUT,
                "redis-server on port {} did not answer within {START_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: an outage, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain client connection, to look at what the host stored.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .expect("connect to test redis")
    }

    fn ping(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url())?;
        let mut c = client.get_connection_with_timeout(Duration::from_millis(200))?;
        redis::cmd("PING").query(&mut c)
    }
}

/// Whether `redis-server` is installed; if not, says so (or fails when
/// Redis is required).
fn installed(test: &str) -> bool {
    let installed = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        require_or_skip(Suite::Redis, &format!("{test}: redis-server not installed"));
    }
    installed
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
