"""`share = "per-client"` on the HTTP front: each client session gets its
own process of the server, stopped when the session ends or the gateway
shuts down; `shared` (the default) gives every client one process.

The server is counter_server.py, which counts calls per process: two real
clients (the Python `mcp` client over Streamable HTTP) see independent
counts per-client and one count shared. Its processes linger after their
stdin closes (as a server that misses its client leaving would), so only
the gateway's SIGTERM ends them in time: a gateway that merely closed
their stdin, or forgot them, would leave them behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import VENV_BIN, HERE, free_port, await_port, mender_bin, mender_status, mender_toml, text
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio


def counter(workdir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "command": str(VENV_BIN / "python"),
        "args": [str(HERE / "counter_server.py")],
        "env": {"COUNTER_LINGER": "60", "COUNTER_PIDS": str(workdir / "pids")},
        **extra,
    }


def alive(pid: int) -> bool:
    """Whether `pid` exists at all (a zombie counts: it was not reaped)."""
    return Path(f"/proc/{pid}").exists()


class Front:
    """`mender mcp-proxy --listen` on a free port, over `servers`."""

    def __init__(self, workdir: Path, servers: dict[str, dict[str, Any]], *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.config = mender_toml(workdir, servers)
        self.log = workdir / "front.stderr"
        with open(self.log, "w") as err:
            self.process = subprocess.Popen(
                [mender_bin(), "mcp-proxy", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}", *extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        await_port(self.port, self.process, self.log)

    def client(self, terminate_on_close: bool = True) -> Client:
        transport = streamable_http_client(
            self.url, http_client=create_mcp_http_client(), terminate_on_close=terminate_on_close
        )
        return Client(transport, cache=None)

    def processes(self, name: str = "counter") -> list[dict[str, Any]]:
        [up] = [u for u in mender_status(self.config)["upstreams"] if u["name"] == name]
        return up.get("clients", [])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def front(workdir: Path, servers: dict[str, dict[str, Any]], *extra: str) -> Iterator[Front]:
    f = Front(workdir, servers, *extra)
    try:
        yield f
    finally:
        f.stop()
        print(f"--- mender mcp-proxy stderr ---\n{f.log.read_text(errors='replace')[-20000:]}")


async def count(client: Client) -> tuple[int, int]:
    r = await client.call_tool("count", {})
    assert not r.is_error, text(r)
    pid, n = text(r).split()
    return int(pid), int(n)


async def wait_until(what: str, check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.1)


def flat(error: BaseException) -> str:
    """An error and everything grouped or chained inside it, as text."""
    parts = [repr(error)]
    for inner in getattr(error, "exceptions", ()):
        parts.append(flat(inner))
    if error.__cause__ is not None:
        parts.append(flat(error.__cause__))
    return " | ".join(parts)


async def test_each_client_gets_its_own_process_stopped_when_its_session_ends(workdir: Path) -> None:
    with front(workdir, {"counter": counter(workdir, share="per-client", **{"max-processes": 2})}) as f:
        async with f.client() as a:
            async with f.client() as b:
                a1, a2, b1, a3 = await count(a), await count(a), await count(b), await count(a)
                # Independent state: each process counts its own client's calls.
                assert [a1[1], a2[1], a3[1]] == [1, 2, 3] and b1[1] == 1, (a1, a2, a3, b1)
                pid_a, pid_b = a1[0], b1[0]
                assert pid_a == a2[0] == a3[0] and pid_a != pid_b

                procs = f.processes()
                assert sorted(p["pid"] for p in procs) == sorted([pid_a, pid_b]), procs
                assert all(p["state"] == "ready" for p in procs), procs
                [up] = mender_status(f.config)["upstreams"]
                assert up["share"] == "per-client" and up["state"] == "per-client" and up["calls"] == 4, up
                # The table shows each process under its server, by session number.
                table = subprocess.run(
                    [mender_bin(), "status", "--config", str(f.config)], capture_output=True, text=True, timeout=10
                ).stdout
                rows = [line.split() for line in table.splitlines() if line.startswith("  session ")]
                assert sorted(int(r[3]) for r in rows) == sorted([pid_a, pid_b]), table

                # The cap: a third client is refused, saying why.
                with pytest.raises(BaseException) as refused:
                    async with f.client() as c:
                        await count(c)
                assert "max-processes = 2" in flat(refused.value), flat(refused.value)

            # b's session ended (DELETE): its process is stopped and reaped
            # (it lingers on a closed stdin, so SIGTERM it is).
            await wait_until(f"pid {pid_b} gone", lambda: not alive(pid_b))
            assert alive(pid_a)
            assert [p["pid"] for p in f.processes()] == [pid_a]
            assert (await count(a)) == (pid_a, 4)

            # Supervised like a shared one: killed, it is restarted for its
            # session, which keeps working.
            os.kill(pid_a, signal.SIGKILL)
            await wait_until(
                "a's process restarted",
                lambda: (p := f.processes()) and p[0]["state"] == "ready" and p[0]["pid"] not in (None, pid_a),
            )
            pid, n = await count(a)
            assert pid != pid_a and n == 1, (pid, n)
            assert f.processes()[0]["restarts"] >= 1
        await wait_until("no per-client process left", lambda: not f.processes())
    # Every process the gateway ever started is gone.
    started = [int(p) for p in (workdir / "pids").read_text().split()]
    assert len(started) == 3, started
    assert not [p for p in started if alive(p)], started


async def test_a_shared_server_is_one_process_for_every_client(workdir: Path) -> None:
    with front(workdir, {"counter": counter(workdir)}) as f:
        async with f.client() as a, f.client() as b:
            a1, b1, a2 = await count(a), await count(b), await count(a)
        assert a1[0] == b1[0] == a2[0] and [a1[1], b1[1], a2[1]] == [1, 2, 3], (a1, b1, a2)
        [up] = mender_status(f.config)["upstreams"]
        assert up["share"] == "shared" and up["state"] == "ready" and up["pid"] == a1[0], up
        # A session's end stops nothing shared.
        assert alive(a1[0])


async def test_an_idle_session_expires_and_shutdown_stops_every_process(workdir: Path) -> None:
    with front(workdir, {"counter": counter(workdir, share="per-client")}, "--session-idle", "2s") as f:
        # A client that goes away without DELETE: its session idles out.
        async with f.client(terminate_on_close=False) as gone:
            pid_gone, _ = await count(gone)
        await wait_until(f"idle pid {pid_gone} gone", lambda: not alive(pid_gone), timeout=20)

        async with f.client() as a, f.client() as b:
            pids = [(await count(a))[0], (await count(b))[0]]
            assert len(set(pids)) == 2
            # The gateway shuts down with both sessions open.
            started = time.monotonic()
            assert f.stop() == 0, f.log.read_text()
            assert time.monotonic() - started < 15
        assert not [p for p in pids if alive(p)], pids
        assert "SIGTERM: stopping the MCP servers" in f.log.read_text()


async def test_each_session_gets_only_its_own_process_progress(workdir: Path) -> None:
    # Two processes of one server number their progress tokens alike (each
    # connection counts from the same start, through the same start-up
    # requests): the gateway routes progress by process and token, so each
    # client sees exactly its own steps.
    with front(workdir, {"counter": counter(workdir, share="per-client")}) as f:
        async with f.client() as a, f.client() as b:
            seen: dict[str, list[float]] = {"a": [], "b": []}

            async def run(who: str, client: Client, n: int) -> None:
                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    seen[who].append(value)

                r = await client.call_tool("steps", {"n": n}, progress_callback=on_progress)
                assert not r.is_error, text(r)

            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "a", a, 8)
                tg.start_soon(run, "b", b, 3)
        assert seen == {"a": [1, 2, 3, 4, 5, 6, 7, 8], "b": [1, 2, 3]}, seen


async def test_a_server_that_ignores_sigterm_is_killed_and_reaped(workdir: Path) -> None:
    spec = counter(workdir, share="per-client")
    spec["env"]["COUNTER_IGNORE_TERM"] = "1"
    with front(workdir, {"counter": spec}) as f:
        async with f.client() as a:
            pid, _ = await count(a)
        started = time.monotonic()
        # Closed stdin (3 s), SIGTERM ignored (2 s), then SIGKILL, reaped.
        await wait_until(f"pid {pid} gone", lambda: not alive(pid), timeout=20)
        assert time.monotonic() - started >= 4, "ended before the graces ran out"
        assert "ignored SIGTERM; killing it" in f.log.read_text()
