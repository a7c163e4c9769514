//! The attacks. Each really does what it says; `black_box` keeps the
//! optimizer from proving the endless ones pointless and removing them.

use std::hint::black_box;

use mender_guest::{log, state};
use serde::Deserialize;

/// An attack, by its name in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    Loop,
    Memory,
    Recursion,
    Panic,
    HugeFallback,
    AbsurdDelay,
    LogFlood,
    StateFlood,
    ReadFile,
    ReadEnv,
    Socket,
    WallClock,
    LogInjection,
    StateGrowth,
}

/// What an attack that returns leaves for its hook to answer.
pub enum Answer {
    /// Nothing: behave (init succeeds, admit allows, on-error passes).
    Behave,
    /// What happened, as text: init fails, admit rejects, on-error fails.
    Report(String),
    /// A 16 MiB text: init fails, admit rejects, on-error falls back.
    Huge(String),
    /// A delay of `u64::MAX` ms: admit waits, on-error retries.
    EndlessDelay,
}

const MIB: usize = 1 << 20;
/// The size of the huge-fallback body (and reason).
const HUGE_BYTES: usize = 16 * MIB;
/// How many log lines log-flood writes, and how long each is.
const LOG_LINES: usize = 100_000;
const LOG_LINE_BYTES: usize = 10 << 10;
/// How many keys state-flood sets, and how long each value is.
const STATE_KEYS: usize = 100_000;
const STATE_VALUE_BYTES: usize = 100 << 10;

/// Run `attack`. The endless ones never return.
pub fn run(attack: Attack) -> Answer {
    match attack {
        Attack::Loop => spin(),
        Attack::Memory => hoard(),
        Attack::Recursion => Answer::Report(format!("recursion returned {}", recurse(0))),
        // A trap (panic = "abort"): the host must contain it, recycle the
        // instance, and keep the message the SDK logged.
        Attack::Panic => panic!("hostile panic"),
        // The host must cap the size of what it accepts (or its memory
        // limit must stop the guest building it) and not pass 16 MiB on.
        Attack::HugeFallback => Answer::Huge("x".repeat(HUGE_BYTES)),
        // The host must clamp the delay to its guardrails (and the call's
        // deadline) instead of sleeping for 584 million years.
        Attack::AbsurdDelay => Answer::EndlessDelay,
        Attack::LogFlood => log_flood(),
        Attack::StateFlood => state_flood(),
        Attack::ReadFile => read_file(),
        Attack::ReadEnv => read_env(),
        Attack::Socket => socket(),
        Attack::WallClock => wall_clock(),
        Attack::LogInjection => log_injection(),
        Attack::StateGrowth => state_growth(),
    }
}

/// Spin forever. The host must interrupt the call at its time limit (epoch
/// or fuel) and treat it as a trap.
fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        // An opaque read and write each turn: the loop cannot be removed.
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Allocate 1 MiB blocks, fill them, and keep them, forever. The host's
/// memory limit must refuse to grow the linear memory, which traps the
/// guest (a failed allocation aborts).
fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Not zeroes: fresh pages are zero already, and the allocator could
        // skip writing them. 0xA5 touches every byte.
        hoard.push(black_box(vec![0xA5; MIB]));
        black_box(&hoard);
    }
}

/// Recurse without bound. The host must cap the stack (wasmtime's
/// `max_wasm_stack`) and treat the overflow as a trap.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // Never true, but the optimizer cannot know: the function may return,
    // so the work after the call below is not dead.
    if black_box(depth) == u64::MAX {
        return depth;
    }
    let below = recurse(depth + 1);
    // Work after the call: not a tail call, so it cannot become a loop.
    black_box(below ^ depth).wrapping_add(depth)
}

/// Write `LOG_LINES` lines of `LOG_LINE_BYTES` (1 GB), then behave. The host
/// must cut long lines and rate-limit, and stay responsive.
fn log_flood() -> Answer {
    let filler = "L".repeat(LOG_LINE_BYTES - 8);
    for line in 0..LOG_LINES {
        log::info(&format!("{line:07} {filler}"));
    }
    Answer::Behave
}

/// Set `STATE_KEYS` distinct keys to `STATE_VALUE_BYTES` values (10 GB),
/// then behave. The host must enforce its state budget (it traps the guest
/// past it) rather than run out of memory itself.
fn state_flood() -> Answer {
    let value = "S".repeat(STATE_VALUE_BYTES);
    for key in 0..STATE_KEYS {
        state::set(&format!("flood-{key}"), &value, None);
    }
    Answer::Behave
}

/// A forged log line: what a log line starting at the plugin's `\n` would
/// look like in the agent's log, coloured red and clearing the screen.
pub const FORGED_LINE: &str =
    "2026-12-02T09:00:00.000000Z  INFO mender::call: forged \x1b[31mall clear\x1b[0m\x1b[2J";

/// Log a line with an embedded newline and ANSI escapes, then fail with a
/// reason holding the same. The host must escape both: one plugin line is
/// one log line, and no escape reaches a terminal raw.
fn log_injection() -> Answer {
    log::warn(&format!("innocent\n{FORGED_LINE}\r\n{FORGED_LINE}"));
    Answer::Report(format!("failing\n{FORGED_LINE}"))
}

/// Values `state-growth` writes: the largest the host accepts.
const GROWTH_VALUE_BYTES: usize = 64 << 10;
/// New keys per call: with the counter's increment, the 256 state writes
/// the host allows one hook call.
const GROWTH_KEYS_PER_CALL: usize = 255;

/// Write 255 new 64 KiB keys on every call (16 MiB each), never the same
/// key twice, then behave. The per-call write budget does not stop this;
/// the host's state quota per (plugin, service) must, with a fault, or
/// the host grows without bound.
fn state_growth() -> Answer {
    let round = state::increment("growth-round", 1, None);
    let value = "G".repeat(GROWTH_VALUE_BYTES);
    for key in 0..GROWTH_KEYS_PER_CALL {
        state::set(&format!("growth-{round}-{key}"), &value, None);
    }
    Answer::Behave
}

/// Read a host file. On `wasm32-unknown-unknown` std has no filesystem, so
/// this reports an "unsupported" error: the host gave no way to reach one.
fn read_file() -> Answer {
    Answer::Report(format!(
        "file: {:?}",
        std::fs::read_to_string("/etc/passwd")
    ))
}

/// Read the host's environment. Impossible for the same reason: there is
/// no `HOME`, and listing the variables panics in this std ("not supported
/// on this platform"), so the guest traps. `HOME` is logged first so a test
/// sees both; the answer is reached only if std ever lists variables.
fn read_env() -> Answer {
    let home = std::env::var("HOME");
    log::warn(&format!("env: HOME={home:?}"));
    let vars = std::env::vars().count();
    Answer::Report(format!("env: HOME={home:?}, vars={vars}"))
}

/// Open a TCP connection (the discard port). Impossible: std reports an
/// "unsupported" error, as there is no network import.
fn socket() -> Answer {
    Answer::Report(format!(
        "socket: {:?}",
        std::net::TcpStream::connect("127.0.0.1:9")
    ))
}

/// Read the ambient clock. `wasm32-unknown-unknown` std has none: both calls
/// panic ("time not implemented on this platform"), so the guest traps: a plugin's only time is the host's `clock::now`. The
/// answer is reached only if std ever starts returning a time.
fn wall_clock() -> Answer {
    let system = std::time::SystemTime::now();
    let instant = std::time::Instant::now();
    Answer::Report(format!("wall-clock: {system:?}, {instant:?}"))
}
