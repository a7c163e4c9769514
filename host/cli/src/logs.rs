//! `mender logs [SERVER] [--follow] [--since 5m]`: what a running gateway's
//! local servers wrote to stderr, as it kept it (redacted, timestamped,
//! error codes marked), read through its status socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mender_mcp::{LogLine, LogQuery};

/// How often `--follow` asks for new lines: a person reading along does
/// not notice half a second, and the socket answers in microseconds.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub(crate) struct Args {
    /// One server's lines (`[mcp.servers.NAME]`); every server's when
    /// omitted.
    server: Option<String>,
    /// Keep printing new lines as the servers write them, until
    /// interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines from the last DURATION (`30s`, `5m`, `1h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// The config the gateway was started with (finds its socket).
    #[arg(long, required_unless_present = "socket")]
    config: Option<PathBuf>,
    /// The gateway's status socket, instead of `--config`.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let socket = match crate::mcp::socket_of(args.config.as_deref(), args.socket.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mender logs: {e}");
            return ExitCode::from(2);
        }
    };
    let since_unix_ms = args.since.map_or(0, |d| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(now.saturating_sub(d).as_millis()).unwrap_or(0)
    });
    let mut query = LogQuery {
        server: args.server.clone(),
        after_seq: 0,
        since_unix_ms,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mender logs: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        loop {
            match mender_mcp::fetch_logs(&socket, &query).await {
                Ok(lines) => {
                    for line in &lines {
                        print(line, args.json);
                    }
                    if let Some(last) = lines.last() {
                        query.after_seq = last.seq;
                    }
                }
                Err(e) => {
                    eprintln!("mender logs: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if !args.follow {
                return ExitCode::SUCCESS;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    })
}

/// `2026-12-07T08:03:02.123Z raw [ECONNREFUSED] connect ECONNREFUSED …`
fn print(line: &LogLine, json: bool) {
    if json {
        out!("{}", serde_json::to_string(line).unwrap_or_default());
        return;
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(line.at_unix_ms);
    let codes = if line.codes.is_empty() {
        String::new()
    } else {
        format!("[{}] ", line.codes.join(", "))
    };
    out!(
        "{} {} {codes}{}",
        humantime::format_rfc3339_millis(at),
        line.server,
        mender::escape_control(&line.line)
    );
}
