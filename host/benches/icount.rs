//! Instructions per call, which load does not move (criterion's times
//! do, on a shared 2-core machine): `bench/icount.py` runs this binary
//! under callgrind twice per path, with two call counts, and divides the
//! difference by the extra calls, so start-up (compiling plugins, the
//! first regex) cancels out. Only `main`'s thread is counted (the epoch
//! ticker and the coarse clock's thread run on wall time).
//!
//! usage: icount PATH CALLS, PATH one of [`PATHS`].

mod common;

use std::hint::black_box;

use mender::Runtime;

/// The paths measured: (name, service of [`common::PIPELINE3`], whether
/// the upstream fails, whether the call is answered: by the upstream, or
/// for a failing one by the static fallback).
const PATHS: [(&str, &str, bool, bool); 5] = [
    ("happy/bare", "bare", false, true),
    ("happy/breaker", "breaker", false, true),
    ("happy/pipeline3", "pipeline3", false, true),
    ("error/bare", "bare", true, false),
    ("error/pipeline3", "pipeline3", true, true),
];

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    // `cargo bench` without `--bench NAME` runs every bench binary with
    // `--bench`: this one is not timed, so there is nothing to do.
    if args.peek().is_some_and(|a| a == "--bench") {
        eprintln!("icount: not a timed bench; bench/icount.py runs it under callgrind");
        return;
    }
    let (Some(path), Some(calls)) = (args.next(), args.next()) else {
        let names: Vec<_> = PATHS.iter().map(|p| p.0).collect();
        eprintln!("usage: icount PATH CALLS; PATH one of {names:?}");
        std::process::exit(2);
    };
    let Some(&(_, service, fails, answered)) = PATHS.iter().find(|p| p.0 == path) else {
        eprintln!("icount: no path {path:?}");
        std::process::exit(2);
    };
    let Ok(calls) = calls.parse::<u64>() else {
        eprintln!("icount: CALLS must be a number, not {calls:?}");
        std::process::exit(2);
    };
    let tokio = common::current_thread();
    let rt: Runtime = tokio.block_on(async { common::runtime(common::PIPELINE3) });
    // Every call takes the path named: a happy call is answered by the
    // upstream; a failing one by the fallback, or not at all.
    let took_the_path = tokio.block_on(async {
        let mut all = true;
        for _ in 0..calls {
            let ok = if fails {
                common::failing_call(&rt, service).await
            } else {
                common::succeeding_call(&rt, service).await
            };
            all &= black_box(ok) == answered;
        }
        all
    });
    assert!(took_the_path, "{path}: a call did not take the path named");
}
