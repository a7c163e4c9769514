#!/usr/bin/env python3
"""Turns one bench/run's criterion estimates into results.md and results.json.

Reads every `<criterion dir>/**/new/estimates.json` (with the id from the
`benchmark.json` beside it), the memory figures `host/benches/load.rs`
wrote, and the machine facts `bench/run` noted, then computes every ratio
from figures of this one run. Standard library only.
"""

import argparse
import json
import pathlib
import re
import sys

# Goals from the issue (#7).
GOAL_DECISION_NS = 2000  # 3-strategy error-path decision
GOAL_DECISION_FLOORS = 3.0  # ... as a multiple of the floor
GOAL_HAPPY_OVERHEAD_NS = 60  # success path over the bare call
GOAL_EXTISM_FACTOR = 3.0  # mender at least this much faster than Extism
GOAL_CONTRACT_FLOOR = 0.5  # contract 0.2's floor as a multiple of 0.1's (#19)


def estimates(dirs):
    """Time per iteration and its 95% interval, in ns, by criterion id (`group/function`)."""
    found = {}
    for base in dirs:
        for est in pathlib.Path(base).glob("**/new/estimates.json"):
            meta = est.parent / "benchmark.json"
            if not meta.exists():
                continue
            ident = json.loads(meta.read_text())
            key = ident.get("full_id") or f"{ident['group_id']}/{ident.get('function_id')}"
            data = json.loads(est.read_text())
            # What criterion prints: the slope of time over iterations where
            # it sampled linearly, else the mean.
            point = data.get("slope") or data["mean"]
            found[key] = {
                "ns": point["point_estimate"],
                "low": point["confidence_interval"]["lower_bound"],
                "high": point["confidence_interval"]["upper_bound"],
            }
    return found


def locked_versions(lock, name):
    """Versions of package `name` in a Cargo.lock."""
    text = pathlib.Path(lock).read_text()
    return sorted(set(re.findall(rf'name = "{re.escape(name)}"\nversion = "([^"]+)"', text)))


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def fmt_bytes(n):
    if n is None:
        return "n/a"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.0f} KiB"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", nargs="+", required=True, help="criterion output dirs")
    ap.add_argument("--memory", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--lock", required=True, help="the workspace Cargo.lock")
    ap.add_argument("--extism-lock", required=True)
    ap.add_argument("--out", required=True, help="path without extension")
    ap.add_argument("--doc", help="also put the table in this Markdown file (docs/benchmarks.md), "
                    "between the bench-results markers")
    args = ap.parse_args()

    est = estimates(args.criterion)
    ns = lambda key: est.get(key, {}).get("ns")  # noqa: E731
    machine = json.loads(pathlib.Path(args.machine).read_text())
    mem_path = pathlib.Path(args.memory)
    memory = json.loads(mem_path.read_text()) if mem_path.exists() else {}
    versions = {
        "mender wasmtime": ", ".join(locked_versions(args.lock, "wasmtime")),
        "extism": ", ".join(locked_versions(args.extism_lock, "extism")),
        "extism wasmtime": ", ".join(
            v for v in locked_versions(args.extism_lock, "wasmtime")
            if v not in locked_versions(args.lock, "wasmtime")
        ),
        "no-async floor wasmtime": ", ".join(
            v for v in locked_versions(args.extism_lock, "wasmtime")
            if v in locked_versions(args.lock, "wasmtime")
        ),
    }

    floor = ns("floor/on_error_noop")
    floor_admit = ns("floor/admit_noop")
    floor_sync = ns("floor_no_async/on_error_noop")
    # The two contracts' floors, measured interleaved in one bench.
    floor_v0_1 = ns("contract_floor/on_error_v0_1")
    floor_v0_2 = ns("contract_floor/on_error_v0_2")
    p3 = ns("error_path/pipeline3")
    bare_err = ns("error_path/bare")
    backoff = ns("error_path/backoff")
    extism = ns("extism/backoff_on_error")
    bare_call = ns("happy/bare_call")
    happy = {k: ns(f"happy/{k}") for k in
             ["bare", "breaker", "breaker-no-timeout", "breaker-limiter", "breaker-limiter-leased",
              "breaker-bulkhead",
              "breaker-hedge", "pipeline3", "cached", "bulkhead-plugin"]}
    overhead = {k: (None if v is None or bare_call is None else v - bare_call)
                for k, v in happy.items()}
    # The same calls with the Prometheus recorder installed: the metrics'
    # cost, as a ratio to the run without one and in ns per call.
    recorded = {k: ns(f"happy/{k}_recorded") for k in ["bare", "breaker", "pipeline3"]}
    metrics_cost = {
        k: {
            "ns": None if v is None or happy[k] is None else v - happy[k],
            "ratio": ratio(v, happy[k]),
        }
        for k, v in recorded.items()
    }

    def verdict(ok):
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    goals = [
        {
            "goal": "3-strategy error-path decision ≤ 2 µs",
            "measured": fmt_ns(p3),
            "met": None if p3 is None else p3 <= GOAL_DECISION_NS,
        },
        {
            "goal": "3-strategy error-path decision ≤ 3× the floor",
            "measured": fmt_ratio(ratio(p3, floor)),
            "met": None if ratio(p3, floor) is None else ratio(p3, floor) <= GOAL_DECISION_FLOORS,
        },
        {
            "goal": "happy path (breaker) ≤ 60 ns over the bare call",
            "measured": "n/a" if overhead["breaker"] is None else fmt_ns(overhead["breaker"]),
            "met": None if overhead["breaker"] is None
            else overhead["breaker"] <= GOAL_HAPPY_OVERHEAD_NS,
        },
        {
            "goal": "happy path (breaker + leasing rate limiter) ≤ 60 ns over the bare call",
            "measured": "n/a" if overhead["breaker-limiter-leased"] is None
            else fmt_ns(overhead["breaker-limiter-leased"]),
            "met": None if overhead["breaker-limiter-leased"] is None
            else overhead["breaker-limiter-leased"] <= GOAL_HAPPY_OVERHEAD_NS,
        },
        {
            "goal": "contract 0.2 floor ≤ 0.5× the 0.1 floor (on-error, interleaved)",
            "measured": "n/a" if floor_v0_1 is None or floor_v0_2 is None
            else f"{fmt_ratio(ratio(floor_v0_2, floor_v0_1))} "
                 f"({fmt_ns(floor_v0_2)} vs {fmt_ns(floor_v0_1)})",
            "met": None if ratio(floor_v0_2, floor_v0_1) is None
            else ratio(floor_v0_2, floor_v0_1) <= GOAL_CONTRACT_FLOOR,
        },
        {
            "goal": "≥ 3× faster than Extism (same backoff strategy)",
            "measured": fmt_ratio(ratio(extism, backoff)),
            "met": None if ratio(extism, backoff) is None
            else ratio(extism, backoff) >= GOAL_EXTISM_FACTOR,
        },
    ]

    L = []
    quick = machine.get("quick")
    L.append("<!-- written by bench/run; do not edit by hand -->")
    L.append("")
    L.append(f"Run of {machine.get('date', '?')}{' (QUICK MODE: indicative only)' if quick else ''}. "
             f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
             f"load average {machine.get('load_start', '?')} at the start, "
             f"{machine.get('load_end', '?')} at the end; {machine.get('rustc', '?')}; "
             f"wasmtime {versions['mender wasmtime']} (mender), extism {versions['extism']} "
             f"on wasmtime {versions['extism wasmtime']}.")
    L.append("")
    L.append("### Goals")
    L.append("")
    L.append("| goal | measured | |")
    L.append("|---|---|---|")
    for g in goals:
        L.append(f"| {g['goal']} | {g['measured']} | {verdict(g['met'])} |")
    L.append("")
    L.append("### Error path: one failed call")
    L.append("")
    L.append("| what | time | × floor | note |")
    L.append("|---|---|---|---|")
    rows = [
        ("floor: raw typed call of a no-op `on-error` (same argument types)", floor,
         "wasmtime with `async` on, as in mender"),
        ("floor: the same, wasmtime without `async`", floor_sync,
         f"cost of the feature: {fmt_ratio(ratio(floor, floor_sync))}"),
        ("floor: raw typed call of a no-op `admit`", floor_admit, ""),
        ("**breaker → backoff → fallback**, `Runtime::call`, guardrails included", p3,
         "3 Wasm calls: breaker `admit`, backoff `on-error`, fallback `serve`"),
        ("breaker alone (`admit`)", ns("error_path/breaker"), "its lease ends at each failure"),
        ("backoff alone (`on-error`)", backoff, "the guardrail refuses its retry"),
        ("static fallback alone (`serve`)", ns("error_path/fallback"), ""),
        ("no plugins: the host's own path", bare_err,
         "event, redaction, guardrails, history, error"),
    ]
    for what, v, note in rows:
        L.append(f"| {what} | {fmt_ns(v)} | {fmt_ratio(ratio(v, floor))} | {note} |")
    L.append("")
    L.append(f"Parts of the host's path: redacting a plain error message "
             f"{fmt_ns(ns('host/redact_message'))}; one monotonic clock read "
             f"{fmt_ns(ns('host/clock_read'))}.")
    L.append("")
    L.append("### Against native Rust and Extism")
    L.append("")
    L.append("| what | mender (Wasm) | peer | peer time | mender's time ÷ peer's |")
    L.append("|---|---|---|---|---|")
    peers = [
        ("backoff decision", backoff, "plain Rust (`bench/logic/backoff.rs`)",
         ns("native/backoff_decide")),
        ("breaker", ns("error_path/breaker"), "plain Rust (`bench/logic/breaker.rs`), locked",
         ns("native/breaker_admit")),
        ("breaker → backoff → fallback", p3, "plain Rust, same steps", ns("native/pipeline3")),
        ("backoff decision", backoff,
         f"Extism {versions['extism']} plugin (Rust PDK, JSON in/out)", extism),
    ]
    for what, m, peer, p in peers:
        r = ratio(m, p)
        faster = "" if r is None or r >= 1 else f" (mender {fmt_ratio(1 / r)} faster)"
        L.append(f"| {what} | {fmt_ns(m)} | {peer} | {fmt_ns(p)} | {fmt_ratio(r)}{faster} |")
    L.append("")
    L.append("mender's figures are whole `Runtime::call`s (event, redaction, guardrails, history), "
             "the peers' only the decision: the ratios are upper bounds of mender's overhead.")
    L.append("")
    L.append("### Happy path: one successful call")
    L.append("")
    L.append("| what | time | over the bare call |")
    L.append("|---|---|---|")
    L.append(f"| bare call (the closure, awaited) | {fmt_ns(bare_call)} | |")
    names = {
        "bare": "`Runtime::call`, no plugins (guardrails only)",
        "breaker": "`Runtime::call`, breaker (lease held)",
        "breaker-no-timeout": "the same, `attempt-timeout` and `deadline` off",
        "breaker-limiter": "`Runtime::call`, breaker and rate limiter (no lease: a Wasm call per attempt)",
        "breaker-limiter-leased": "`Runtime::call`, breaker and rate limiter with `lease = 1000` (a Wasm call per 1000 attempts)",
        "breaker-bulkhead": "`Runtime::call`, breaker behind `max-in-flight = 64` (a slot per attempt)",
        "breaker-hedge": "`Runtime::call`, breaker and a leased hedge that never fires (the race's cost)",
        "pipeline3": "`Runtime::call`, breaker → backoff → static fallback",
        "cached": "the same with cached fallback (records each answer)",
        "bulkhead-plugin": "`Runtime::call`, the `bulkhead` plugin (AIMD; no lease: a Wasm call, "
                           "in-flight and latency counted per attempt)",
    }
    for k, label in names.items():
        L.append(f"| {label} | {fmt_ns(happy[k])} | {fmt_ns(overhead[k])} |")
    L.append("")
    L.append("### Metrics on the happy path: with the Prometheus recorder installed, and without")
    L.append("")
    L.append("| what | no recorder | recorder | cost | ratio |")
    L.append("|---|---|---|---|---|")
    for k, label in [("bare", "no plugins"), ("breaker", "breaker (lease held)"),
                     ("pipeline3", "breaker → backoff → static fallback")]:
        c = metrics_cost[k]
        L.append(f"| {label} | {fmt_ns(happy[k])} | {fmt_ns(recorded[k])} | "
                 f"{fmt_ns(c['ns'])} | {fmt_ratio(c['ratio'])} |")
    L.append("")
    L.append("### Throughput: 64 tasks on one multi-threaded tokio runtime, one worker per core")
    L.append("")
    L.append("| what | per call | calls per second |")
    L.append("|---|---|---|")
    for key, label in [("throughput/error_pipeline3", "failed calls, breaker → backoff → fallback"),
                       ("throughput/happy_breaker", "successful calls, breaker")]:
        v = ns(key)
        L.append(f"| {label} | {fmt_ns(v)} | {'n/a' if not v else f'{1e9 / v:,.0f}'} |")
    L.append("")
    L.append("Each plugin keeps `pool-size` warm instances (default: one per core); a hook call "
             "takes one and puts it back, so with one worker per core no extra instance is made.")
    L.append("")
    L.append("### Loading and memory (the bundled backoff plugin, "
             f"{fmt_bytes(memory.get('component_bytes'))} component)")
    L.append("")
    L.append("| what | mender | Extism |")
    L.append("|---|---|---|")
    L.append(f"| compile | {fmt_ns(ns('load/compile'))} | {fmt_ns(ns('extism/compile'))} |")
    L.append(f"| load a precompiled artefact (wasmtime `deserialize`, what mender's cache does "
             f"after checking the entry's SHA-256) | {fmt_ns(ns('load/cache_load'))} | n/a |")
    L.append(f"| instantiate + `init` | {fmt_ns(ns('load/instantiate_init'))} | "
             f"{fmt_ns(ns('extism/instantiate'))} |")
    L.append(f"| `RuntimeBuilder::build` with this one plugin | {fmt_ns(ns('load/runtime_build'))} | |")
    L.append(f"| RSS per loaded plugin (compiled code + 1 warm instance) | "
             f"{fmt_bytes(memory.get('rss_per_loaded_plugin_bytes'))} | |")
    L.append(f"| RSS per extra warm instance | {fmt_bytes(memory.get('rss_per_warm_instance_bytes'))} | |")
    L.append("")
    L.append("### One decision per guest language")
    L.append("")
    L.append("A failed `Runtime::call` through a service whose only strategy is the plugin "
             "(the guardrail refuses its retry): the same host path each time.")
    L.append("")
    L.append("| plugin | language | time | × the Rust plugin |")
    L.append("|---|---|---|---|")
    rust = ns("polyglot/rust")
    for key, plugin, lang in [("rust", "exponential-backoff", "Rust"),
                              ("python", "adaptive-retry-py", "Python"),
                              ("javascript", "ratelimit-aware-js", "JavaScript"),
                              ("c", "fixed-schedule-c", "C")]:
        v = ns(f"polyglot/{key}")
        L.append(f"| `{plugin}` | {lang} | {fmt_ns(v)} | {fmt_ratio(ratio(v, rust))} |")
    L.append("")
    L.append("### Hot reload")
    L.append("")
    L.append("| what | time |")
    L.append("|---|---|")
    for key, label in [
        ("reload/write_to_serving_cold", "plugin file written → new version serving, compiled (no cache)"),
        ("reload/write_to_serving_cached", "the same, compiled artefact from the cache"),
        ("reload/write_to_serving_watched_cached", "the same through the file watcher (250 ms debounce included)"),
        ("reload/unchanged", "a reload where nothing changed"),
    ]:
        L.append(f"| {label} | {fmt_ns(ns(key))} |")
    calm, storm = ns("reload_storm/failing_call_no_reloads"), ns("reload_storm/failing_call_reload_storm")
    L.append(f"| a failed call, no reloads | {fmt_ns(calm)} |")
    L.append(f"| a failed call while another thread reloads back to back | {fmt_ns(storm)} "
             f"({fmt_ratio(ratio(storm, calm))}) |")
    L.append("")
    L.append("Calls per second during the reload storm: "
             f"{'n/a' if not storm else f'{1e9 / storm:,.0f}'}, against "
             f"{'n/a' if not calm else f'{1e9 / calm:,.0f}'} without reloads (one task).")
    L.append("")

    md = "\n".join(L)
    out = pathlib.Path(args.out)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({
        "machine": machine,
        "versions": versions,
        "goals": goals,
        "estimates_ns": est,
        "derived": {
            "decision_over_floor": ratio(p3, floor),
            "async_feature_cost": ratio(floor, floor_sync),
            "extism_over_mender_backoff": ratio(extism, backoff),
            "happy_overhead_ns": overhead,
            "happy_metrics_cost": metrics_cost,
        },
        "memory": memory,
    }, indent=2) + "\n")
    if args.doc:
        doc = pathlib.Path(args.doc)
        text = doc.read_text()
        begin, end = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
        if begin not in text or end not in text:
            sys.exit(f"{doc} has no {begin} ... {end} markers")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        # The table's ### sections sit under the file's "## The latest run".
        doc.write_text(f"{head}{begin}\n{md}\n{end}{tail}")
    print(md)
    missing = [k for k in ["floor/on_error_noop", "error_path/pipeline3", "happy/bare_call",
                           "extism/backoff_on_error", "floor_no_async/on_error_noop"] if k not in est]
    if missing:
        print(f"warning: no estimates for {missing}", file=sys.stderr)


if __name__ == "__main__":
    main()
