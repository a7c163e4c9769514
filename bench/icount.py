#!/usr/bin/env python3
"""Instructions per call on the host's main paths, counted by callgrind.

Times on this shared 2-core machine move with the load; instruction
counts do not. For each path of host/benches/icount.rs this runs the
bench binary under `valgrind --tool=callgrind` twice, with FEW and MANY
calls, counting only the main thread (`--toggle-collect`), and reports
(I(MANY) - I(FEW)) / (MANY - FEW): start-up (compiling plugins, the
first use of a regex) is the same in both runs and cancels out.

Instructions are not time: a `rep movsb` copying a kilobyte is one
instruction, and a clock read or a cache miss costs more than its count.
They are the measure that says whether a change did less work.

usage: bench/icount.py ICOUNT_BIN OUT_PREFIX [--quick]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

PATHS = [
    ("happy/bare", "successful call, no plugins (guardrails only)"),
    ("happy/breaker", "successful call, breaker (lease held)"),
    ("happy/pipeline3", "successful call, breaker → backoff → static fallback"),
    ("error/bare", "failed call, no plugins"),
    ("error/pipeline3", "failed call, breaker → backoff → static fallback (three Wasm calls)"),
]


def instructions(binary: str, path: str, calls: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--toggle-collect=*icount::main",
         "--callgrind-out-file=/dev/null", binary, path, str(calls)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        sys.exit(f"icount: {path} with {calls} calls failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", out.stderr)
    if not m:
        sys.exit(f"icount: no instruction count from callgrind for {path}:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, prefix = sys.argv[1], Path(sys.argv[2])
    quick = "--quick" in sys.argv[3:]
    few, many = (200, 1200) if quick else (2000, 22000)
    rows = []
    for path, what in PATHS:
        a = instructions(binary, path, few)
        b = instructions(binary, path, many)
        per_call = round((b - a) / (many - few))
        rows.append({"path": path, "what": what, "instructions_per_call": per_call})
        print(f"{path}: {per_call} instructions per call", flush=True)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(
        {"few": few, "many": many, "quick": quick, "paths": rows}, indent=2) + "\n")
    lines = [
        "<!-- written by bench/run (bench/icount.py); do not edit by hand -->",
        "",
        f"Instructions per call (callgrind, main thread only; ({many} − {few}) calls"
        f"{', quick run' if quick else ''}). Load does not move these; the times in"
        " [results.md](results.md) are the same paths' cost on the clock.",
        "",
        "| path | what | instructions per call |",
        "|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['path']}` | {r['what']} | {r['instructions_per_call']:,} |")
    prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
