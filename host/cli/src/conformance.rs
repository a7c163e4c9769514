//! `mender conformance PLUGIN.wasm`: replays scenario files against a
//! plugin and prints each scenario's pass/fail with the first divergence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mender::conformance::{ScenarioFile, Subject};

/// The arguments of `mender conformance`.
#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a component `.wasm` file, or `bundled:NAME`.
    plugin: String,
    /// A TOML file holding the plugin's config table, for scenario files
    /// and scenarios that set no `config` of their own.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A scenario file, or a directory of them. Default: the `conformance/`
    /// directory beside the plugin file.
    #[arg(long)]
    scenarios: Option<PathBuf>,
}

/// Runs the scenarios; exit status 1 if any fails, 2 if they cannot run.
pub fn run(args: Args) -> ExitCode {
    match try_run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn try_run(args: &Args) -> Result<bool, String> {
    let scenarios = match &args.scenarios {
        Some(p) => p.clone(),
        None => {
            let beside = Path::new(&args.plugin)
                .parent()
                .unwrap_or(Path::new("."))
                .join("conformance");
            if !beside.is_dir() {
                return Err(format!(
                    "no --scenarios given and no {} directory beside the plugin",
                    beside.display()
                ));
            }
            beside
        }
    };
    let config = match &args.config {
        Some(path) => {
            let text = mender::file::read_text(path, "a TOML config file")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(table)
        }
        None => None,
    };
    let files = ScenarioFile::load(&scenarios).map_err(|e| e.to_string())?;
    let subject = Subject::load(&args.plugin)?;
    let report = subject.run(&files, config.as_ref());
    out!("{report}");
    Ok(report.passed())
}
