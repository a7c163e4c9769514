//! One decision per guest language: a failed `Runtime::call` through a
//! service whose only strategy is the Rust, Python, JavaScript or C plugin
//! (the guardrail then refuses the retry, so nothing sleeps). The same host
//! path for each, so the differences are the guests'. Components come from
//! `plugins/build-polyglot` (`target/polyglot/`, or `MENDER_POLYGLOT_DIR`);
//! a missing one is skipped with a message.

mod common;

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

use common::failing_call;

/// (service and bench name, component): the Rust one is bundled.
const GUESTS: [(&str, &str); 3] = [
    ("python", "adaptive-retry-py"),
    ("javascript", "ratelimit-aware-js"),
    ("c", "fixed-schedule-c"),
];

fn polyglot_dir() -> PathBuf {
    std::env::var_os("MENDER_POLYGLOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/polyglot"))
}

fn config(found: &[(&'static str, PathBuf)]) -> String {
    let mut text = String::from(
        "[guardrails]\nmax-attempts = 1\n\n[plugins.rust]\nbundled = \"exponential-backoff\"\n\n[services.rust]\nstrategies = [\"rust\"]\n",
    );
    for (name, path) in found {
        text += &format!(
            "\n[plugins.{name}]\npath = \"{}\"\n\n[services.{name}]\nstrategies = [\"{name}\"]\n",
            path.display()
        );
    }
    text
}

fn decision(c: &mut Criterion) {
    let mut found = Vec::new();
    for (name, file) in GUESTS {
        let path = polyglot_dir().join(format!("{file}.wasm"));
        if path.exists() {
            found.push((name, path));
        } else {
            eprintln!(
                "skipped: {} not built (run plugins/build-polyglot --install)",
                path.display()
            );
        }
    }
    let tokio = common::current_thread();
    let rt = tokio.block_on(async { common::runtime(&config(&found)) });
    let mut g = c.benchmark_group("polyglot");
    for service in std::iter::once("rust").chain(found.iter().map(|(n, _)| *n)) {
        g.bench_function(service, |b| {
            b.iter_custom(|iters| common::time_calls(&tokio, iters, || failing_call(&rt, service)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = decision
}
criterion_main!(benches);
