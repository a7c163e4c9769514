//! The `mender` command line: one file per subcommand.

/// `println!` that ends the process quietly when stdout is closed (e.g.
/// `mender demo | head`), instead of panicking on a broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod check;
mod conformance;
mod demo;
mod timeline;
mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mender: calls that survive failure, decided by sandboxed Wasm plugins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a simulated flaky upstream (outage, 429s, expired token, slow
    /// calls) through the bundled plugins, in virtual time, and print what
    /// happened. Deterministic for a seed.
    Demo {
        /// Seed for the upstream's faults and the plugins' jitter.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Use this mender.toml instead of the embedded demo config (it must
        /// configure the `demo` service).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print only the summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Validate plugin components (`.wasm`) or a whole config (`.toml`,
    /// loading every plugin it names). Exits non-zero on any problem.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the plugins compiled into this binary.
    Plugins,
    /// Replay scenario files against a plugin; exits non-zero on a failure.
    Conformance(conformance::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            seed,
            config,
            quiet,
        } => demo::run(seed, config.as_deref(), quiet),
        Command::Check { files } => check::run(&files),
        Command::Conformance(args) => conformance::run(args),
        Command::Plugins => {
            for name in mender::bundled_plugins() {
                out!("{name}");
            }
            ExitCode::SUCCESS
        }
    }
}
