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

mod admin;
mod call;
mod check;
mod conformance;
mod demo;
mod logging;
mod login;
mod logs;
mod mcp;
#[cfg(feature = "otlp")]
mod otlp;
mod timeline;
mod upstream;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mender: calls that survive failure, decided by sandboxed Wasm plugins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text`, or `json` (one object
    /// per line, for a log collector). Default: `MENDER_LOG_FORMAT`, else
    /// text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<logging::LogFormat>,
    /// Export spans (each call, each attempt, each gateway request) over
    /// OTLP/HTTP to this collector, e.g. `http://127.0.0.1:4318` (spans go
    /// to `/v1/traces`). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`; off when
    /// neither is set.
    #[arg(long, global = true, value_name = "URL")]
    otlp: Option<String>,
}

/// `--admin ADDR` and its opt-in to a non-loopback address.
#[derive(clap::Args, Clone, Debug, Default)]
struct AdminArgs {
    /// Serve `/healthz`, `/readyz`, `/status` and `/metrics` (Prometheus)
    /// over HTTP on this address (`127.0.0.1:9464`; port 0 picks a free
    /// one, and the address is logged). Loopback only unless
    /// `--admin-public`.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Allow `--admin` on a non-loopback address. The endpoints have no
    /// authentication: put them behind a firewall or a proxy that has.
    #[arg(long)]
    admin_public: bool,
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
        /// Run in real time, looping the script, and reload when the
        /// config file or a plugin file changes (or on SIGHUP). Needs
        /// `--config`.
        #[arg(long, requires = "config")]
        watch: bool,
        /// With `--watch`: time between calls.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms", requires = "watch")]
        every: std::time::Duration,
        /// With `--watch`: stop after this many calls (default: run until
        /// interrupted).
        #[arg(long, requires = "watch")]
        calls: Option<u32>,
        /// Print the embedded demo config (a starting point for `--config`)
        /// and exit.
        #[arg(long, conflicts_with_all = ["config", "watch"])]
        print_config: bool,
        /// With `--admin`, the process keeps serving the endpoints after the
        /// script ends, until interrupted, so its metrics can be scraped.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Validate plugin components (`.wasm`) or a whole config (`.toml`,
    /// loading every plugin it names). A component is instantiated and its
    /// `init` run under the `[limits]` of the first valid config given, or
    /// the defaults. Exits non-zero on any problem.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the plugins compiled into this binary.
    Plugins,
    /// Replay scenario files against a plugin; exits non-zero on a failure.
    Conformance(conformance::Args),
    /// A resilient MCP gateway on stdio (or, with --listen, over HTTP for
    /// many clients): put it in an MCP client's config in place of the
    /// servers listed in `[mcp.servers.*]`. Crashed or hung servers are
    /// restarted; calls go through the strategy plugins.
    McpProxy {
        /// The mender.toml with `[mcp.servers.*]` (and the usual plugins
        /// and services).
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        http: mcp::HttpArgs,
        /// `--admin` defaults to `MENDER_ADMIN` when that is set.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// A one-shot MCP client through mender: connect to TARGET (a URL or a
    /// server in --config), list its tools, or call one (--tool) through
    /// the pipeline. Exits 1 when the call fails.
    Call(call::Args),
    /// Sign in to a remote server whose `[mcp.servers.SERVER.oauth]` uses
    /// the authorization-code grant: prints the URL to open, waits for the
    /// browser on 127.0.0.1, and stores the tokens (0600) for the gateway.
    Login {
        /// The mender.toml that configures SERVER.
        #[arg(long, default_value = "mender.toml")]
        config: PathBuf,
        /// The server's name in `[mcp.servers.*]`.
        server: String,
    },
    /// The health of a running `mender mcp-proxy`: each upstream's state,
    /// restarts, circuit and last error.
    Status {
        /// The config the gateway was started with (finds its socket).
        #[arg(long, required_unless_present = "socket")]
        config: Option<PathBuf>,
        /// The gateway's status socket, instead of `--config`.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What a running `mender mcp-proxy`'s local servers wrote to stderr
    /// (the last `[mcp] log-lines` of each), redacted, with known error
    /// codes (ECONNREFUSED, HTTP 503, invalid_grant, …) marked.
    Logs(logs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match logging::LogFormat::resolve(cli.log_format) {
        Ok(format) => logging::Logging {
            format,
            otlp: cli.otlp,
        },
        Err(e) => {
            eprintln!("mender: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Demo {
            print_config: true, ..
        } => {
            out!("{}", demo::DEMO_CONFIG.trim_end());
            ExitCode::SUCCESS
        }
        Command::Demo {
            seed,
            config: Some(config),
            watch: true,
            every,
            calls,
            admin,
            ..
        } => admin::demo_with(&admin, || {
            watch::run(watch::WatchOptions {
                seed,
                config: &config,
                every,
                calls,
            })
        }),
        Command::Demo {
            seed,
            config,
            quiet,
            admin,
            ..
        } => admin::demo_with(&admin, || demo::run(seed, config.as_deref(), quiet)),
        Command::Check { files } => check::run(&files),
        Command::Conformance(args) => conformance::run(args),
        Command::McpProxy {
            config,
            http,
            mut admin,
        } => {
            if admin.admin.is_none() {
                admin.admin = std::env::var("MENDER_ADMIN").ok().filter(|a| !a.is_empty());
            }
            mcp::proxy(&config, http, &admin, &log)
        }
        Command::Call(args) => call::run(args, &log),
        Command::Login { config, server } => login::run(&config, &server, &log),
        Command::Status {
            config,
            socket,
            json,
        } => mcp::status(config.as_deref(), socket, json),
        Command::Logs(args) => logs::run(args),
        Command::Plugins => {
            for name in mender::bundled_plugins() {
                out!("{name}");
            }
            ExitCode::SUCCESS
        }
    }
}
