#!/usr/bin/env python3
"""The gateway's cost, side by side with the floor and a peer, in one run.

Contenders, each driven with `tools/call echo` on
@modelcontextprotocol/server-everything (on stdio behind every gateway) by
a lean raw client (no SDK: JSON lines on stdio; hand-written HTTP/1.1 on
keep-alive sockets, see gateway_http.py):

- `direct`: server-everything itself on stdio (the floor: every gateway
  pays it);
- `mender`: `mender mcp-proxy` in front of it (stdio → stdio; no plugins:
  the pipeline's bare path);
- `mender-http`: `mender mcp-proxy --listen` (Streamable HTTP → stdio);
- `peer-http`: the `mcp-proxy` crate, pinned in bench/mcp-proxy-peer
  (HTTP → stdio, the peer issue #18 names), when `--peer=BIN` is given.

Rounds are interleaved (direct, mender, mender-http, peer-http, direct, …)
so drifting load hits all alike. Per contender: sequential p50/p99
latency, throughput with 32 calls in flight, the gateway process's own CPU
per call (utime+stime of that process alone, from /proc, so the client's
and the upstream's costs are not counted) and its peak RSS. Ratios are
against `direct` (and, for CPU, the peer) from the same run; each goal of
issue #18 prints met or missed. The load average before and after is
recorded, and a run that starts above 1.0 is marked as such.

usage: bench/gateway.py MENDER_BIN SERVER_JS OUT_PREFIX [--peer=BIN] [--only=NAME,…] [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway_http import HttpServer, ProcessStats, free_port

IN_FLIGHT = 32


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Server(ProcessStats):
    """One contender's process, spoken to in raw JSON lines."""

    def __init__(self, command: list[str], tool: str = "echo") -> None:
        self.tool = tool
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
            "params": {"name": self.tool, "arguments": {"message": "bench"}},
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

    def sequential(self, calls: int) -> tuple[list[float], float]:
        """Latencies of `calls` calls one after another, and CPU seconds spent."""
        latencies = []
        cpu = self.cpu_s()
        for _ in range(calls):
            started = time.perf_counter()
            self.wait(self.call())
            latencies.append(time.perf_counter() - started)
        return latencies, self.cpu_s() - cpu

    def concurrent(self, calls: int, in_flight: int) -> tuple[float, float]:
        """Calls per second with `in_flight` outstanding, and CPU seconds spent."""
        cpu = self.cpu_s()
        started = time.perf_counter()
        for _ in range(in_flight):
            self.call()
        sent, done = in_flight, 0
        while done < calls:
            self.wait()
            done += 1
            if sent < calls:
                self.call()
                sent += 1
        return calls / (time.perf_counter() - started), self.cpu_s() - cpu

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The goals of issue #18, each judged on this run's figures.
GOALS = "throughput ≥ 0.9× direct, p50 ≤ +100 µs over direct, CPU ≤ 30 µs per call and ≤ 0.3× the peer's, RSS ≤ 25 MiB"


def goal_rows(name: str, rows: dict[str, dict[str, float]]) -> list[str]:
    """`| goal | measured | met? |` rows for one gateway contender."""
    r, d = rows[name], rows["direct"]
    peer = rows.get("peer-http")

    def row(goal: str, value: str, met: bool) -> str:
        return f"| {name} | {goal} | {value} | {'met' if met else '**missed**'} |"

    tp = r["calls_per_s"] / d["calls_per_s"]
    over = r["p50_us"] - d["p50_us"]
    out = [
        row("calls/s at 32 in flight ≥ 0.9× direct", f"{tp:.2f}×", tp >= 0.9),
        row("p50 ≤ direct + 100 µs", f"+{over:.0f} µs", over <= 100),
    ]
    for mode, label in (("seq", "sequential"), ("32", "32 in flight")):
        cpu = r[f"cpu_us_per_call_{mode}"]
        out.append(row(f"CPU per call ≤ 30 µs ({label})", f"{cpu:.1f} µs", cpu <= 30))
        if peer and name != "peer-http":
            ratio = cpu / peer[f"cpu_us_per_call_{mode}"]
            out.append(row(f"CPU per call ≤ 0.3× the peer's ({label})", f"{ratio:.2f}×", ratio <= 0.3))
    out.append(row("peak RSS ≤ 25 MiB", f"{r['rss_mib']:.1f} MiB", r["rss_mib"] <= 25))
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    mender, server_js, out = args[0], args[1], Path(args[2])
    quick = "--quick" in sys.argv
    peer = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--peer=")), None)
    rounds, seq_calls, conc_calls = (2, 300, 1000) if quick else (5, 2000, 8000)
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "mender.toml"
    config.write_text(
        f'[mcp]\nstatus-socket = "{tmp / "s.sock"}"\n'
        f'[mcp.servers.everything]\ncommand = "node"\nargs = ["{server_js}", "stdio"]\n'
    )

    def mender_http() -> HttpServer:
        port = free_port()
        command = [mender, "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        return HttpServer(command, port, "/mcp", "echo")

    def peer_http() -> HttpServer:
        # mcp-proxy names a backend's tools `BACKEND/TOOL` and serves MCP at `/`.
        port = free_port()
        peer_config = tmp / "peer.toml"
        peer_config.write_text(
            f'[proxy]\nname = "bench"\n[proxy.listen]\nhost = "127.0.0.1"\nport = {port}\n'
            f'[[backends]]\nname = "everything"\ntransport = "stdio"\ncommand = "node"\n'
            f'args = ["{server_js}", "stdio"]\n'
        )
        return HttpServer([peer, "--config", str(peer_config)], port, "/", "everything/echo")

    contenders = {
        "direct": lambda: Server(["node", server_js, "stdio"]),
        "mender": lambda: Server([mender, "mcp-proxy", "--config", str(config)]),
        "mender-http": mender_http,
    }
    if peer:
        contenders["peer-http"] = peer_http
    # `--only=direct,mender`: a subset, for comparing builds (direct stays:
    # every ratio is against it).
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
    if only:
        contenders = {n: c for n, c in contenders.items() if n == "direct" or n in only}
    load_start = loadavg()
    samples: dict[str, dict[str, list[float]]] = {
        name: {"lat": [], "seq_cpu": [], "rate": [], "conc_cpu": [], "rss": []} for name in contenders
    }
    # Interleaved: every round runs each contender once, so drifting load
    # hits all of them alike.
    for _ in range(rounds):
        for name, start in contenders.items():
            server = start()
            try:
                server.sequential(200)  # warm-up: JIT, caches, allocations
                lat, cpu = server.sequential(seq_calls)
                rate, conc_cpu = server.concurrent(conc_calls, IN_FLIGHT)
                rss = server.rss_mib()
            finally:
                # A failed run must not leave a gateway (and its upstream) behind.
                server.close()
            s = samples[name]
            s["lat"] += lat
            s["seq_cpu"].append(cpu / seq_calls)
            s["rate"].append(rate)
            s["conc_cpu"].append(conc_cpu / conc_calls)
            s["rss"].append(rss)
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
    d = rows["direct"]
    ratios = {
        name: {
            "throughput_vs_direct": r["calls_per_s"] / d["calls_per_s"],
            "p50_over_direct_us": r["p50_us"] - d["p50_us"],
        }
        for name, r in rows.items()
        if name != "direct"
    }
    if "peer-http" in rows:
        p = rows["peer-http"]
        for name in [n for n in ("mender", "mender-http") if n in rows]:
            ratios[name]["cpu_vs_peer_seq"] = rows[name]["cpu_us_per_call_seq"] / p["cpu_us_per_call_seq"]
            ratios[name]["cpu_vs_peer_32"] = rows[name]["cpu_us_per_call_32"] / p["cpu_us_per_call_32"]
    result = {
        "load_start": load_start,
        "load_end": load_end,
        "quick": quick,
        "peer": "mcp-proxy 0.6.0 (bench/mcp-proxy-peer)" if peer else None,
        "rows": rows,
        "ratios": ratios,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    mark = " (**start load above 1.0: not a clean run**)" if load_start > 1.0 else ""
    lines = [
        f"Gateway: `tools/call echo` on server-everything (stdio behind every gateway); "
        f"load {load_start:.2f} → {load_end:.2f}{mark}" + (" (quick)" if quick else ""),
        "",
        "| contender | p50 | p99 | calls/s at 32 in flight | own CPU per call (seq / 32) | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        cpu = "n/a (the floor)" if name == "direct" else (
            f"{r['cpu_us_per_call_seq']:.1f} / {r['cpu_us_per_call_32']:.1f} µs"
        )
        lines.append(
            f"| {name} | {r['p50_us']:.0f} µs | {r['p99_us']:.0f} µs | {r['calls_per_s']:.0f} | {cpu} | {r['rss_mib']:.1f} MiB |"
        )
    lines += [
        "",
        "`direct`: server-everything on stdio; `mender`: `mender mcp-proxy` (stdio → stdio); "
        "`mender-http`: `mender mcp-proxy --listen` (HTTP → stdio); "
        "`peer-http`: the `mcp-proxy` crate 0.6.0 (HTTP → stdio)"
        + ("" if peer else " — not run (no `--peer=BIN`)") + ".",
        "",
        f"Goals (issue #18): {GOALS}.",
        "",
        "| gateway | goal | this run | |",
        "|---|---|---|---|",
    ]
    for name in rows:
        if name != "direct":
            lines += goal_rows(name, rows)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
