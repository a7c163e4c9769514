#!/usr/bin/env python3
"""The gateway's cost, side by side with the floor, in one run.

Contenders, each an MCP server on stdin/stdout that a lean raw JSON-RPC
client (this script: one line out, one line in, no SDK) drives with
`tools/call echo` on @modelcontextprotocol/server-everything:

- `direct`: server-everything itself (the floor: every gateway pays it);
- `mender`: `mender mcp-proxy` in front of it (no plugins: the pipeline's
  bare path).

Rounds are interleaved (direct, mender, direct, mender, …) so drifting load
hits both alike. Per contender: sequential p50/p99 latency, throughput with
32 calls in flight, the gateway process's own CPU per call (utime+stime of
that process alone, from /proc, so the client's and the upstream's costs
are not counted) and its peak RSS. Ratios are against `direct` from the
same run. The load average before and after is recorded, and a run that
starts above 1.0 is marked as such.

usage: bench/gateway.py MENDER_BIN SERVER_JS OUT_PREFIX [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IN_FLIGHT = 32


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Server:
    """One contender's process, spoken to in raw JSON lines."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0
        )
        self.out = self.proc.stdout
        self.next_id = 0
        self.request("initialize", {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        })
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        assert self.proc.stdin
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    def call(self) -> int:
        self.next_id += 1
        self.send({
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "bench"}},
        })
        return self.next_id

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.wait(self.next_id)

    def wait(self, want: int | None = None) -> dict:
        """The next response (or the one with id `want`)."""
        while True:
            line = self.out.readline()
            if not line:
                raise SystemExit(f"{self.proc.args[0]} closed its stdout")
            message = json.loads(line)
            if "id" in message and (want is None or message["id"] == want):
                if "error" in message or message.get("result", {}).get("isError"):
                    raise SystemExit(f"{self.proc.args[0]}: {message}")
                return message

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sequential(server: Server, calls: int) -> tuple[list[float], float]:
    """Latencies of `calls` calls one after another, and CPU seconds spent."""
    latencies = []
    cpu = server.cpu_s()
    for _ in range(calls):
        started = time.perf_counter()
        server.wait(server.call())
        latencies.append(time.perf_counter() - started)
    return latencies, server.cpu_s() - cpu


def concurrent(server: Server, calls: int) -> tuple[float, float]:
    """Calls per second with IN_FLIGHT outstanding, and CPU seconds spent."""
    cpu = server.cpu_s()
    started = time.perf_counter()
    for _ in range(IN_FLIGHT):
        server.call()
    sent, done = IN_FLIGHT, 0
    while done < calls:
        server.wait()
        done += 1
        if sent < calls:
            server.call()
            sent += 1
    return calls / (time.perf_counter() - started), server.cpu_s() - cpu


def main() -> None:
    mender, server_js, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    quick = "--quick" in sys.argv
    rounds, seq_calls, conc_calls = (2, 300, 1000) if quick else (5, 2000, 8000)
    config = Path(tempfile.mkdtemp()) / "mender.toml"
    config.write_text(
        f'[mcp]\nstatus-socket = "{config.parent / "s.sock"}"\n'
        f'[mcp.servers.everything]\ncommand = "node"\nargs = ["{server_js}", "stdio"]\n'
    )
    contenders = {
        "direct": ["node", server_js, "stdio"],
        "mender": [mender, "mcp-proxy", "--config", str(config)],
    }
    load_start = loadavg()
    samples: dict[str, dict[str, list[float]]] = {
        name: {"lat": [], "seq_cpu": [], "rate": [], "conc_cpu": [], "rss": []} for name in contenders
    }
    for _ in range(rounds):
        for name, command in contenders.items():
            server = Server(command)
            sequential(server, 200)  # warm-up: JIT, caches, allocations
            lat, cpu = sequential(server, seq_calls)
            rate, conc_cpu = concurrent(server, conc_calls)
            s = samples[name]
            s["lat"] += lat
            s["seq_cpu"].append(cpu / seq_calls)
            s["rate"].append(rate)
            s["conc_cpu"].append(conc_cpu / conc_calls)
            s["rss"].append(server.rss_mib())
            server.close()
    load_end = loadavg()

    def row(name: str) -> dict[str, float]:
        s = samples[name]
        lat = sorted(s["lat"])
        return {
            "p50_us": statistics.median(lat) * 1e6,
            "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
            "calls_per_s": statistics.median(s["rate"]),
            "cpu_us_per_call_seq": statistics.median(s["seq_cpu"]) * 1e6,
            "cpu_us_per_call_32": statistics.median(s["conc_cpu"]) * 1e6,
            "rss_mib": max(s["rss"]),
        }

    rows = {name: row(name) for name in contenders}
    d, m = rows["direct"], rows["mender"]
    result = {
        "load_start": load_start,
        "load_end": load_end,
        "quick": quick,
        "rows": rows,
        "ratios": {
            "throughput_vs_direct": m["calls_per_s"] / d["calls_per_s"],
            "p50_over_direct_us": m["p50_us"] - d["p50_us"],
        },
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    mark = " (**start load above 1.0: not a clean run**)" if load_start > 1.0 else ""
    lines = [
        f"Gateway: `tools/call echo` on server-everything, stdio; load {load_start:.2f} → {load_end:.2f}{mark}"
        + (" (quick)" if quick else ""),
        "",
        "| contender | p50 | p99 | calls/s at 32 in flight | own CPU per call (seq / 32) | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        cpu = "n/a (the floor)" if name == "direct" else (
            f"{r['cpu_us_per_call_seq']:.0f} / {r['cpu_us_per_call_32']:.0f} µs"
        )
        lines.append(
            f"| {name} | {r['p50_us']:.0f} µs | {r['p99_us']:.0f} µs | {r['calls_per_s']:.0f} | {cpu} | {r['rss_mib']:.1f} MiB |"
        )
    lines += [
        "",
        f"mender: throughput {result['ratios']['throughput_vs_direct']:.2f}× direct (goal ≥ 0.9×), "
        f"p50 +{result['ratios']['p50_over_direct_us']:.0f} µs over direct (goal ≤ 100 µs), "
        f"gateway CPU {m['cpu_us_per_call_seq']:.0f} µs per call (goal ≤ 30 µs).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
