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

#[path = "common/admin_gateway.rs"]
mod admin_gateway;
#[path = "common/tools.rs"]
mod tools;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use admin_gateway::{RawServer, gateway, get, python, send};
use tools::{Suite, require_or_skip, workspace};

const TOKEN: &str = "page-token-5b1e93c0aa";

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
    let raw = RawServer {
        token: TOKEN,
        extra_env: "",
        // Slow enough that a browser sees the upstream down.
        restart_backoff: "{ base = \"4s\", max = \"4s\" }",
    };
    let (_running, mut stdin, addr, logs) = gateway(dir.path(), &python, raw);
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || logs.iter().count());
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
    let status: mender_mcp::GatewayStatus = serde_json::from_str(&get(addr, "/status").1).unwrap();
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
