//! Builds the guest plugins and test fixtures into WebAssembly components.
//!
//! 1. Makes sure the `wasm32-unknown-unknown` and `wasm32-wasip2` targets
//!    are installed.
//! 2. Runs one nested `cargo build --profile wasm-guest` for every guest
//!    crate, in its own target dir so it does not wait on this build's lock,
//!    and a second, small one for the WASI fixtures (`WASI_FIXTURES`).
//! 3. Turns each core module into a component (wit-component), checks that
//!    it imports only `mender:plugin/*` of its contract version (the guest
//!    SDK's, 0.2.0, save the fixtures pinned to 0.1.0 in `PINNED_V0_1` and
//!    those in `OTHER_CONTRACT_FIXTURES`) and exports one mender interface
//!    of that version, and
//!    writes it to `$OUT_DIR/guests/<crate>.wasm`. The WASI fixtures come
//!    out of the linker as components already, and may also import
//!    `wasi:*@0.2.*`.
//! 4. Writes `$OUT_DIR/bundled.rs` (the plugins, by crate name, as bytes) and
//!    sets `MENDER_GUEST_DIR` for tests that load fixtures from disk.
//!
//! Modelled on wasmtime's `crates/test-programs/artifacts/build.rs`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wasmparser::{Parser, Payload};
use wit_component::ComponentEncoder;

/// The guests' target: no WASI, so a plugin can reach nothing the WIT does
/// not hand it.
const TARGET: &str = "wasm32-unknown-unknown";

/// The workspace profile the guests build with (see the root Cargo.toml).
const PROFILE: &str = "wasm-guest";

/// The crates under `plugins/`, bundled into the binary, by crate name (which
/// is also the directory name).
const PLUGINS: &[&str] = &[
    "exponential-backoff",
    "circuit-breaker",
    "static-fallback",
    "cached-fallback",
    "rate-limiter",
    "failover",
    "bulkhead",
    "adaptive-timeout",
    "hedge",
];

/// The crates under `tests/guests/`: built like plugins, not bundled; tests
/// find them in `$MENDER_GUEST_DIR`.
const FIXTURES: &[&str] = &[
    "trap-strategy",
    "echo-strategy",
    "hostile-strategy",
    "contract-v0-9",
    "naive-backoff",
    // A strategy that answers without work: the floor in host/benches, on
    // contract 0.1 (pinned, see PINNED_V0_1) and on 0.2.
    "noop-strategy",
    "noop-strategy-v0-2",
    // A strategy whose instances after the first take 5 s to init.
    "slow-init-strategy",
];

/// The crates under `tests/guests-wasi/`: fixtures that probe the WASI
/// sandbox with plain `std`, so they build for [`WASI_TARGET`], whose linker
/// (wasm-component-ld) emits a component that imports WASI 0.2. Not bundled;
/// tests find them in `$MENDER_GUEST_DIR`. Only fixtures may use WASI: a
/// plugin that imports it is refused by check_component.
const WASI_FIXTURES: &[&str] = &["wasi-probe"];

/// The WASI fixtures' target (see [`WASI_FIXTURES`]).
const WASI_TARGET: &str = "wasm32-wasip2";

/// What a WASI fixture may import besides the mender interfaces: WASI 0.2,
/// the version the host links.
const WASI_IMPORT_PACKAGE: &str = "wasi:";
const WASI_IMPORT_VERSION: &str = "@0.2.";

/// What a guest may import: the host interfaces of its contract version.
const IMPORT_PACKAGE: &str = "mender:plugin/";
/// The version the guest SDK speaks, which every guest built with it does.
const IMPORT_VERSION: &str = "@0.2.0";

/// What a guest may export: exactly one of these.
const EXPORTS: &[&str] = &[
    "mender:plugin/strategy@0.2.0",
    "mender:plugin/fallback-handler@0.2.0",
];

/// Fixtures pinned to contract 0.1.0, which the host still implements:
/// built with wit-bindgen on `wit/since_v0.1.0`, not with the SDK, so that
/// 0.1 stays under test from Rust too. They may import only
/// `mender:plugin/*@0.1.0` and export one of [`V0_1_EXPORTS`].
const PINNED_V0_1: &[&str] = &["noop-strategy"];
const V0_1_VERSION: &str = "@0.1.0";
const V0_1_EXPORTS: &[&str] = &[
    "mender:plugin/strategy@0.1.0",
    "mender:plugin/fallback-handler@0.1.0",
];

/// Fixtures built on purpose against another contract version, as
/// (crate, version, its one export), so that host tests can check that the
/// host refuses them and names the version. Such a fixture may import only
/// `mender:plugin/*@<version>`, and must export exactly what is listed here.
/// Only fixtures: check_guest_lists refuses a plugin in this list.
const OTHER_CONTRACT_FIXTURES: &[(&str, &str, &str)] = &[
    // tests/guests/contract-v0-9: a strategy on a future contract whose
    // `init` takes an extra parameter.
    ("contract-v0-9", "@0.9.0", "mender:plugin/strategy@0.9.0"),
];

type Result<T, E = String> = std::result::Result<T, E>;

fn main() {
    if let Err(message) = run() {
        // A panic would add a backtrace hint that helps nobody here.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("host crate has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(var("OUT_DIR")?);

    for input in [
        "wit",
        "guest-sdk",
        "plugins",
        "tests/guests",
        "tests/guests-wasi",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    check_guest_lists(&workspace)?;
    ensure_target_installed(TARGET)?;
    ensure_target_installed(WASI_TARGET)?;

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-guests");
    let guests: Vec<&str> = PLUGINS.iter().chain(FIXTURES).copied().collect();
    build_guests(&workspace, &target_dir, TARGET, &guests)?;
    // A second invocation, as one with both `--target`s would build every
    // guest for both. The triple keeps the outputs apart in the target dir.
    build_guests(&workspace, &target_dir, WASI_TARGET, WASI_FIXTURES)?;

    let guest_dir = out_dir.join("guests");
    fs::create_dir_all(&guest_dir).map_err(|e| format!("creating {}: {e}", guest_dir.display()))?;
    for name in &guests {
        let module = read_output(&target_dir, TARGET, name)?;
        let component = componentize(name, &module)?;
        check_component(name, &component)?;
        write_if_changed(&guest_dir.join(format!("{name}.wasm")), &component)?;
    }
    for name in WASI_FIXTURES {
        let component = read_output(&target_dir, WASI_TARGET, name)?;
        if !Parser::is_component(&component) {
            return Err(format!(
                "the {WASI_TARGET} linker made a core module of {name}, not a component"
            ));
        }
        check_component(name, &component)?;
        write_if_changed(&guest_dir.join(format!("{name}.wasm")), &component)?;
    }

    let bundled = bundled_rs(&guest_dir);
    write_if_changed(&out_dir.join("bundled.rs"), bundled.as_bytes())?;
    println!("cargo:rustc-env=MENDER_GUEST_DIR={}", guest_dir.display());
    // For dependents' build scripts (`links = "mender-guests"`): mender-cli's
    // tests load the same fixtures.
    println!("cargo:dir={}", guest_dir.display());
    Ok(())
}

/// What the nested cargo built for `name` on `target`.
fn read_output(target_dir: &Path, target: &str, name: &str) -> Result<Vec<u8>> {
    let path = target_dir
        .join(target)
        .join(PROFILE)
        .join(format!("{}.wasm", name.replace('-', "_")));
    fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn var(name: &str) -> Result<OsString> {
    env::var_os(name).ok_or_else(|| format!("cargo did not set {name}"))
}

/// Every crate directory under `plugins/`, `tests/guests/` and
/// `tests/guests-wasi/` must be listed above, so a new plugin is never
/// silently left out of the binary.
fn check_guest_lists(workspace: &Path) -> Result<()> {
    for (name, _, _) in OTHER_CONTRACT_FIXTURES {
        if !FIXTURES.contains(name) {
            return Err(format!(
                "host/build.rs lets {name} break the contract (OTHER_CONTRACT_FIXTURES), but \
                 it is not in FIXTURES: only test fixtures may"
            ));
        }
    }
    for name in PINNED_V0_1 {
        if !FIXTURES.contains(name) {
            return Err(format!(
                "host/build.rs pins {name} to contract 0.1.0 (PINNED_V0_1), but it is not in \
                 FIXTURES: plugins use the guest SDK's contract"
            ));
        }
    }
    // Each directory, its list, and where a new crate in it may go.
    let dirs = [
        ("plugins", PLUGINS, "PLUGINS or FIXTURES"),
        ("tests/guests", FIXTURES, "FIXTURES or PLUGINS"),
        ("tests/guests-wasi", WASI_FIXTURES, "WASI_FIXTURES"),
    ];
    for (dir, listed, lists) in dirs {
        let dir = workspace.join(dir);
        let entries = fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if !path.join("Cargo.toml").is_file() {
                continue;
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !listed.contains(&name.as_ref()) {
                return Err(format!(
                    "{} is a guest crate that host/build.rs does not know: add \"{name}\" to \
                     {lists} (PLUGINS are bundled, the others only for tests)",
                    path.display()
                ));
            }
        }
        for name in listed {
            if !dir.join(name).join("Cargo.toml").is_file() {
                return Err(format!(
                    "host/build.rs lists {name}, but {} has no such crate",
                    dir.display()
                ));
            }
        }
    }
    Ok(())
}

/// Install `target` into the toolchain that builds us, if missing.
///
/// Checks the toolchain's sysroot rather than `rustup target list`, so it
/// also works for toolchains rustup does not manage.
fn ensure_target_installed(target: &str) -> Result<()> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running {rustc:?} --print sysroot: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let target_lib = sysroot.join("lib/rustlib").join(target).join("lib");
    if target_lib.is_dir() {
        return Ok(());
    }

    // rustup exports RUSTUP_TOOLCHAIN to the tools it runs; otherwise the
    // sysroot of a rustup toolchain is `$RUSTUP_HOME/toolchains/<name>`.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok().or_else(|| {
        let name = sysroot.file_name()?.to_str()?.to_owned();
        let parent = sysroot.parent()?;
        (parent.file_name()? == "toolchains").then_some(name)
    });
    let mut add = Command::new("rustup");
    add.args(["target", "add", target]);
    if let Some(toolchain) = &toolchain {
        add.args(["--toolchain", toolchain]);
    }
    let suggestion = match &toolchain {
        Some(t) => format!("rustup target add {target} --toolchain {t}"),
        None => format!("rustup target add {target}"),
    };
    eprintln!(
        "the {target} target is missing from {}; running: {suggestion}",
        sysroot.display()
    );
    match add.stdout(Stdio::from(std::io::stderr())).status() {
        Ok(status) if status.success() && target_lib.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "could not install the {target} target (needed to build the guests); run: {suggestion}"
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
            "the {target} target (needed to build the guests) is not installed in {} and rustup \
             is not on PATH; install the target for this toolchain, e.g.: {suggestion}",
            sysroot.display()
        )),
        Err(e) => Err(format!("running rustup: {e}")),
    }
}

/// Variables of this build that must not reach the nested one: they would
/// apply host flags, a host target, another target dir, another profile, or
/// a wrapper (clippy, coverage) to the guests.
fn must_strip(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "LLVM_PROFILE_FILE",
    ];
    const PREFIXES: &[&str] = &["CARGO_PROFILE_", "CARGO_LLVM_COV", "__CARGO_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

fn build_guests(workspace: &Path, target_dir: &Path, target: &str, guests: &[&str]) -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--profile", PROFILE, "--target", target])
        .arg("--target-dir")
        .arg(target_dir);
    for guest in guests {
        cmd.args(["--package", guest]);
    }
    for (name, _) in env::vars_os() {
        if let Some(name) = name.to_str()
            && must_strip(name)
        {
            cmd.env_remove(name);
        }
    }
    let coverage = env::vars_os().any(|(n, _)| n.to_string_lossy().starts_with("CARGO_LLVM_COV"));
    if coverage || env::var_os("CARGO_CFG_MIRI").is_some() {
        // cargo-llvm-cov and miri wrap rustc; the guests need the plain one.
        cmd.env_remove("RUSTC_WRAPPER").env_remove("RUSTC");
    }
    // Our stdout is read by cargo as `cargo:` directives: send the nested
    // build's chatter to stderr, which cargo shows when this script fails.
    cmd.stdout(Stdio::from(std::io::stderr()));
    eprintln!("running: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("running {cargo:?} to build the guests: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the guest plugins for {target} failed ({status}); the nested cargo's \
             errors are above. To reproduce: cargo build --profile {PROFILE} --target {target} \
             -p {}",
            guests.join(" -p ")
        ));
    }
    Ok(())
}

fn componentize(name: &str, module: &[u8]) -> Result<Vec<u8>> {
    ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|encoder| encoder.encode())
        .map_err(|e| format!("turning {name} into a component: {e:#}"))
}

/// The component imports only `mender:plugin/*` of its version (0.2.0, or
/// 0.1.0 for PINNED_V0_1) and exports exactly one mender interface of it
/// (for OTHER_CONTRACT_FIXTURES: imports only
/// `mender:plugin/*` of its version, and exports what is listed there; for
/// WASI_FIXTURES: may also import `wasi:*@0.2.*`).
fn check_component(name: &str, component: &[u8]) -> Result<()> {
    let other_contract = OTHER_CONTRACT_FIXTURES.iter().find(|(n, _, _)| *n == name);
    let (import_version, exports_allowed): (&str, &[&str]) = match other_contract {
        Some((_, version, export)) => (*version, std::slice::from_ref(export)),
        None if PINNED_V0_1.contains(&name) => (V0_1_VERSION, V0_1_EXPORTS),
        None => (IMPORT_VERSION, EXPORTS),
    };
    let wasi = WASI_FIXTURES.contains(&name);
    let allowed = |import: &str| {
        (import.starts_with(IMPORT_PACKAGE) && import.ends_with(import_version))
            || (wasi
                && import.starts_with(WASI_IMPORT_PACKAGE)
                && import.contains(WASI_IMPORT_VERSION))
    };
    let mut depth = 0u32;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("parsing the {name} component: {e}"))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    let import = import.map_err(|e| format!("parsing {name}'s imports: {e}"))?;
                    let import = import.name.name;
                    if allowed(import) {
                        continue;
                    }
                    return Err(if wasi {
                        format!(
                            "the {name} component imports `{import}`; a WASI fixture may import \
                             only {IMPORT_PACKAGE}*{import_version} and \
                             {WASI_IMPORT_PACKAGE}*{WASI_IMPORT_VERSION}*"
                        )
                    } else {
                        format!(
                            "the {name} component imports `{import}`; a guest may import only \
                             {IMPORT_PACKAGE}*{import_version} (no WASI: build it for {TARGET} \
                             with no crate that needs an OS; only WASI_FIXTURES may use WASI)"
                        )
                    });
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(|e| format!("parsing {name}'s exports: {e}"))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    match exports.as_slice() {
        [one] if exports_allowed.contains(&one.as_str()) => Ok(()),
        _ => Err(format!(
            "the {name} component exports {exports:?}; a guest must export exactly one of \
             {exports_allowed:?} (invoke export_strategy! or export_fallback! once)"
        )),
    }
}

fn bundled_rs(guest_dir: &Path) -> String {
    let mut code = String::from(
        "// Generated by host/build.rs: the plugins under plugins/, as components.\n\
         pub(crate) const BUNDLED: &[(&str, &[u8])] = &[\n",
    );
    for name in PLUGINS {
        let path = guest_dir.join(format!("{name}.wasm"));
        code += &format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        );
    }
    code += "];\n";
    code
}

/// Write `bytes` unless the file already holds them, so an unchanged guest
/// does not make rustc rebuild the crate that includes it.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
