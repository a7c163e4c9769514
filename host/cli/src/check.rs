//! `mender check`: is this component a plugin this host can run? Is this
//! config valid (its `[mcp]` servers too), and do all its plugins load?

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) fn run(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    let is_config = |f: &PathBuf| f.extension().is_some_and(|e| e == "toml");
    // Components start under the limits they would be loaded with: those
    // of the config checked beside them, if any.
    let limits = files
        .iter()
        .filter(|f| is_config(f))
        .find_map(|f| mender::Config::from_file(f).ok())
        .map(|c| (c.limits, "its config's [limits]"))
        .unwrap_or((mender::Limits::default(), "the default [limits]"));
    for file in files {
        let result = if is_config(file) {
            check_config(file)
        } else {
            check_component(file, &limits)
        };
        match result {
            Ok(report) => out!("{report}"),
            Err(e) => {
                eprintln!("{}: error: {e}", file.display());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_component(
    file: &Path,
    (limits, which): &(mender::Limits, &str),
) -> Result<String, String> {
    let bytes = mender::plugin::read_component(file)?;
    let report = mender::inspect(&bytes)?;
    let mut out = String::new();
    let world = report.world.clone()?;
    report
        .links
        .clone()
        .map_err(|e| format!("a {world} component this host cannot link: {e}"))?;
    // Linking is not starting: instantiate and `init` it under the limits,
    // as loading it would (a start function that loops, a memory over the
    // limit, fail here rather than at the first load).
    let started = mender::plugin::trial_start(&bytes, limits)
        .map_err(|e| format!("a {world} component that cannot start under {which}: {e}"))?;
    out.push_str(&format!("{}: ok, a {world} component\n", file.display()));
    if let Some(contract) = report.contract {
        out.push_str(&format!("  contract: {contract}\n"));
    }
    out.push_str(&format!("  exports: {}\n", report.exports.join(", ")));
    out.push_str(&format!(
        "  imports: {}",
        if report.imports.is_empty() {
            "(none)".to_owned()
        } else {
            report.imports.join(", ")
        }
    ));
    match started {
        mender::plugin::TrialStart::Started => {
            out.push_str(&format!("\n  starts: instantiates and accepts an empty config under {which}"))
        }
        mender::plugin::TrialStart::NeedsConfig(why) => out.push_str(&format!(
            "\n  starts: instantiates under {which}; init refuses an empty config ({why}), so give it one in mender.toml"
        )),
    }
    Ok(out)
}

fn check_config(file: &Path) -> Result<String, String> {
    let config = mender::Config::from_file(file).map_err(|e| e.to_string())?;
    // `[mcp]` is the gateway's; a typo there would otherwise surface only
    // when `mender mcp-proxy` starts.
    let mcp = mender_mcp::McpConfig::from_file(file).map_err(|e| e.to_string())?;
    let runtime = mender::Runtime::builder()
        .config_file(file)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut out = format!(
        "{}: ok, {} plugin(s), {} service(s)",
        file.display(),
        config.plugins.len(),
        config.services.len()
    );
    for p in runtime.plugins() {
        out.push_str(&format!(
            "\n  plugin {}: {}, contract {}",
            p.name, p.world, p.contract
        ));
    }
    for s in &config.services {
        out.push_str(&format!(
            "\n  service {}: strategies [{}], fallbacks [{}]",
            s.name,
            s.strategies.join(", "),
            s.fallbacks.join(", ")
        ));
    }
    for s in &mcp.servers {
        out.push_str(&format!(
            "\n  mcp server {}: {}{} -> service {}",
            s.name,
            s.target(),
            if s.optional { " (optional)" } else { "" },
            s.service
        ));
        // A warning, not an error: the MCP client that starts the gateway
        // may give it another PATH than this shell's.
        if s.http.is_none()
            && let Err(why) = find_command(&s.command, s.cwd.as_deref())
        {
            out.push_str(&format!(
                "\n    warning: mcp server {} ({}): {why}",
                s.name, s.location
            ));
        }
    }
    Ok(out)
}

/// Where `command` would be run from, as the gateway would spawn it: a
/// path (relative to the server's `cwd`) or a name looked up on the PATH.
fn find_command(command: &str, cwd: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let path = match cwd {
            Some(dir) if Path::new(command).is_relative() => dir.join(command),
            _ => PathBuf::from(command),
        };
        return if runnable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(format!("`{}` is not an executable file", path.display()))
        } else {
            Err(format!("`{}` does not exist", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| runnable(p))
        .ok_or_else(|| {
            format!(
                "`{command}` is not on the PATH ({})",
                path.to_string_lossy()
            )
        })
}
