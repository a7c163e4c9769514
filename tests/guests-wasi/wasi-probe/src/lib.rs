//! Test fixture: a strategy that probes the WASI sandbox from inside, with
//! plain `std`, so host tests can check what a plugin can and cannot reach.
//!
//! Unlike every other guest, this one is built for `wasm32-wasip2` (see
//! `WASI_FIXTURES` in `host/build.rs`): `std::fs`, `std::env`, `std::time`
//! and stdout go through WASI 0.2, so the component imports `wasi:*@0.2.x`
//! besides `mender:plugin/*@0.1.0`, and whatever it reaches is exactly what
//! the host's WASI context grants.
//!
//! Hooks: on-error only. It runs the probes its config asks for and answers
//! `fail(report)`, the report being JSON with one key per probe configured:
//!
//! ```json
//! {
//!   "read":     { "<path>": { "ok": "<content>" } | { "err": "<kind>" } },
//!   "write":    { "<path>": { "ok": true }        | { "err": "<kind>" } },
//!   "list-dir": { "<path>": { "ok": ["<name>"] }  | { "err": "<kind>" } },
//!   "env":      { "vars": 0, "args": 0 },
//!   "clock":    { "wall_ms": 1700000000000, "monotonic": true },
//!   "stdout":   "printed" | { "err": "<kind>" }
//! }
//! ```
//!
//! `<kind>` is the `std::io::ErrorKind` of the failure, as `Debug` prints it
//! (`"NotFound"`, `"PermissionDenied"`, `"ReadOnlyFilesystem"`, ...). Every
//! failure becomes such an entry: a probe never panics. The probes, which
//! run in this order (so a `read` does not see what a `write` creates, but
//! a `list-dir` does):
//!
//! * `read`: `std::fs::read_to_string(path)`.
//! * `write`: `std::fs::write(path, "probe")` (creates or truncates).
//! * `list-dir`: `std::fs::read_dir(path)`, the entries' names sorted.
//! * `env`: how many environment variables and arguments `std::env` sees.
//! * `clock`: `SystemTime::now()` in milliseconds since the Unix epoch, and
//!   whether two `Instant::now()` in a row are in order (a host without the
//!   WASI clocks cannot instantiate this component at all).
//! * `stdout`: writes `probe\n` to stdout and flushes.
//!
//! Config (all optional): `{ "read": [paths], "write": [paths], "list-dir":
//! [paths], "env": bool, "clock": bool, "stdout": bool }`; unknown keys are
//! refused. Paths are the guest's: under WASI, a relative path resolves
//! against `/` (`cache/x` is `/cache/x`), and a path outside every
//! preopened directory is `NotFound`. An escape from a preopened directory
//! (`..`, a symlink out) is the host's to refuse: wasmtime-wasi answers
//! `PermissionDenied`, as it does for a write under a read-only grant.

use std::io::{self, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mender_guest::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
struct Config {
    read: Vec<String>,
    write: Vec<String>,
    list_dir: Vec<String>,
    env: bool,
    clock: bool,
    stdout: bool,
}

struct WasiProbe {
    config: Config,
}

/// `{"ok": value}` or `{"err": "<io::ErrorKind>"}`.
fn outcome<T: Into<Value>>(result: io::Result<T>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value.into() }),
        Err(err) => json!({ "err": format!("{:?}", err.kind()) }),
    }
}

/// One probe per path, keyed by path.
fn per_path<T: Into<Value>>(paths: &[String], probe: impl Fn(&str) -> io::Result<T>) -> Value {
    let results: Map<String, Value> = paths
        .iter()
        .map(|path| (path.clone(), outcome(probe(path))))
        .collect();
    Value::Object(results)
}

fn list_dir(path: &str) -> io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn env() -> Value {
    // The `_os` variants: `std::env::vars` panics on a non-UTF-8 variable.
    json!({
        "vars": std::env::vars_os().count(),
        "args": std::env::args_os().count(),
    })
}

fn clock() -> Value {
    let wall_ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_millis()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(i128::MAX),
    };
    let wall_ms = i64::try_from(wall_ms).unwrap_or(if wall_ms < 0 { i64::MIN } else { i64::MAX });
    let first = Instant::now();
    let second = Instant::now();
    json!({ "wall_ms": wall_ms, "monotonic": second >= first })
}

/// `println!("probe")`, minus the panic when stdout fails.
fn stdout() -> Value {
    let mut out = io::stdout().lock();
    match writeln!(out, "probe").and_then(|()| out.flush()) {
        Ok(()) => json!("printed"),
        Err(err) => json!({ "err": format!("{:?}", err.kind()) }),
    }
}

/// Run the probes `config` asks for; the report described in the crate docs.
fn probe(config: &Config) -> Value {
    let mut report = Map::new();
    if !config.read.is_empty() {
        report.insert(
            "read".into(),
            per_path(&config.read, |path| std::fs::read_to_string(path)),
        );
    }
    if !config.write.is_empty() {
        report.insert(
            "write".into(),
            per_path(&config.write, |path| {
                std::fs::write(path, "probe").map(|()| true)
            }),
        );
    }
    if !config.list_dir.is_empty() {
        report.insert("list-dir".into(), per_path(&config.list_dir, list_dir));
    }
    if config.env {
        report.insert("env".into(), env());
    }
    if config.clock {
        report.insert("clock".into(), clock());
    }
    if config.stdout {
        report.insert("stdout".into(), stdout());
    }
    Value::Object(report)
}

impl Strategy for WasiProbe {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(WasiProbe { config })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_ERROR
    }

    fn on_error(&self, _event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        Decision::fail(probe(&self.config).to_string())
    }
}

mender_guest::export_strategy!(WasiProbe);

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("wasi-probe-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self, name: &str) -> String {
            self.0.join(name).to_str().unwrap().to_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn config_defaults_to_no_probe_and_refuses_unknown_keys() {
        let config: Config = mender_guest::config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(probe(&config), json!({}));
        let config: Config =
            mender_guest::config::parse(r#"{"list-dir": ["/"], "env": true}"#).unwrap();
        assert_eq!(config.list_dir, ["/"]);
        assert!(config.env);
        let err = mender_guest::config::parse::<Config>(r#"{"list_dir": []}"#).unwrap_err();
        assert!(err.contains("unknown field `list_dir`"), "{err}");
    }

    #[test]
    fn file_probes_report_content_or_error_kind() {
        let dir = TempDir::new("files");
        std::fs::write(dir.path("b.txt"), "hello").unwrap();
        std::fs::create_dir(dir.path("a")).unwrap();
        let config = Config {
            read: vec![dir.path("b.txt"), dir.path("missing")],
            write: vec![dir.path("new.txt"), dir.path("no/such/dir.txt")],
            list_dir: vec![dir.path(""), dir.path("missing")],
            ..Config::default()
        };
        let report = probe(&config);
        let read = &report["read"];
        assert_eq!(read[dir.path("b.txt")], json!({ "ok": "hello" }));
        assert_eq!(read[dir.path("missing")], json!({ "err": "NotFound" }));
        let write = &report["write"];
        assert_eq!(write[dir.path("new.txt")], json!({ "ok": true }));
        assert_eq!(
            write[dir.path("no/such/dir.txt")],
            json!({ "err": "NotFound" })
        );
        assert_eq!(
            std::fs::read_to_string(dir.path("new.txt")).unwrap(),
            "probe"
        );
        // The listing was taken after the writes: probes run in report order.
        let list = &report["list-dir"];
        assert_eq!(
            list[dir.path("")],
            json!({ "ok": ["a", "b.txt", "new.txt"] })
        );
        assert_eq!(list[dir.path("missing")], json!({ "err": "NotFound" }));
        assert_eq!(report.as_object().unwrap().len(), 3);
    }

    #[test]
    fn env_clock_and_stdout_probes() {
        let config = Config {
            env: true,
            clock: true,
            stdout: true,
            ..Config::default()
        };
        let report = probe(&config);
        assert!(report["env"]["args"].as_u64().unwrap() >= 1, "{report}");
        assert!(report["env"]["vars"].is_u64(), "{report}");
        // After 2020-01-01 and before 2100-01-01.
        let wall_ms = report["clock"]["wall_ms"].as_i64().unwrap();
        assert!((1_577_836_800_000..4_102_444_800_000).contains(&wall_ms));
        assert_eq!(report["clock"]["monotonic"], true);
        assert_eq!(report["stdout"], "printed");
    }

    #[test]
    fn on_error_fails_with_the_report() {
        let probe = WasiProbe {
            config: Config {
                read: vec!["/definitely/not/here".into()],
                ..Config::default()
            },
        };
        let event = mender_guest::testing::error_event(ErrorKind::Connect, 1);
        let Decision::Fail(report) = probe.on_error(&event, &Outcomes::default()) else {
            panic!("expected fail");
        };
        let report: Value = serde_json::from_str(&report).unwrap();
        assert_eq!(
            report,
            json!({ "read": { "/definitely/not/here": { "err": "NotFound" } } })
        );
    }
}
