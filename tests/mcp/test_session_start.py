"""The first seconds of a session. The proxy starts its upstreams when the
client sends `initialize`, offering them the client's roots, sampling and
elicitation from the start: no upstream is restarted to learn them, so no
call made right after `initialize` is cut off, each upstream is spawned
once per session, and a resource request in that window finds its owner.
A resource request while an upstream restarts after a crash waits for the
new process instead of failing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from conftest import EVERYTHING_JS, mender_toml, proxy, text, write_server
from mcp.shared.exceptions import MCPError
from test_forwarding import CAPABLE

pytestmark = pytest.mark.anyio

# A URI server-everything accepts a subscription to but neither lists nor
# matches with a template: only "the one server with resources" owns it.
UNLISTED_URI = "test://mender/unlisted"
# Calls started this far apart, each running a second.
CALLS, STAGGER = 12, 0.2
# And quick ones, this far apart.
ECHOES, BURST = 150, 0.01


def counted_everything(workdir: Path, spawns: Path) -> dict[str, object]:
    """server-everything behind a script that records each spawn."""
    script = workdir / "everything-counted"
    script.write_text(f'#!/bin/sh\necho "$$" >> "{spawns}"\nexec node "{EVERYTHING_JS}" stdio\n')
    script.chmod(0o755)
    return {"command": str(script)}


def spawn_count(spawns: Path) -> int:
    return len(spawns.read_text().splitlines()) if spawns.exists() else 0


async def test_a_call_right_after_initialize_is_not_cut_off(workdir: Path) -> None:
    log = workdir / "writes.log"
    spawns = workdir / "spawns.log"
    servers = {"everything": counted_everything(workdir, spawns), "writes": write_server(log)}
    # A client that declares roots, sampling and elicitation, as most do.
    async with proxy(mender_toml(workdir, servers), **CAPABLE) as p:
        results: dict[str, types.CallToolResult] = {}

        async def long_running(i: int) -> None:
            await anyio.sleep(i * STAGGER)
            results[f"long{i}"] = await p.client.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 1})

        async def write(i: int) -> None:
            await anyio.sleep(i * STAGGER)
            results[f"w{i}"] = await p.client.call_tool("slow_write", {"note": f"w{i}", "seconds": 1})

        async def echo(i: int) -> None:
            await anyio.sleep(i * BURST)
            results[f"echo{i}"] = await p.client.call_tool("echo", {"message": f"e{i}"})

        # Calls spread over the first seconds, so that some are in flight
        # and some are being sent whenever a restart after `initialize`
        # would happen.
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(long_running, i)
                    tg.start_soon(write, i)
                for i in range(ECHOES):
                    tg.start_soon(echo, i)
        for i in range(ECHOES):
            assert not results[f"echo{i}"].is_error, text(results[f"echo{i}"])
        for i in range(CALLS):
            long = results[f"long{i}"]
            assert not long.is_error and "completed" in text(long).lower(), text(long)
            assert text(results[f"w{i}"]) == f"wrote w{i}", text(results[f"w{i}"])
        # Each write ran once.
        notes = sorted(line.split()[-1] for line in log.read_text().splitlines())
        assert notes == sorted(f"w{i}" for i in range(CALLS)), log.read_text()

        # The client's capabilities reached the one process there is.
        tools = {t.name for t in (await p.client.list_tools()).tools}
        assert "trigger-sampling-request" in tools, tools
        pid = p.upstream("everything")["pid"]
        # Well past the moment a restart for the client's capabilities
        # would have happened (50-100 ms after `initialized`).
        await anyio.sleep(2)
        assert p.upstream("everything")["pid"] == pid
        assert p.upstream("everything")["restarts"] == 0, p.upstream("everything")
    assert spawn_count(spawns) == 1, spawns.read_text()


async def test_each_upstream_is_spawned_once_per_session(workdir: Path) -> None:
    spawns = workdir / "spawns.log"
    config = mender_toml(workdir, {"everything": counted_everything(workdir, spawns)})
    async with proxy(config, **CAPABLE) as p:
        await p.wait_ready("everything")
        await anyio.sleep(3)
        result = await p.client.call_tool("get-roots-list", {})
        assert not result.is_error, text(result)
    assert spawn_count(spawns) == 1, spawns.read_text()
    # A client without those capabilities: also once.
    spawns.unlink()
    async with proxy(config) as p:
        await p.wait_ready("everything")
        await anyio.sleep(2)
    assert spawn_count(spawns) == 1, spawns.read_text()


async def test_subscribe_right_after_initialize(workdir: Path) -> None:
    spawns = workdir / "spawns.log"
    async with proxy(mender_toml(workdir, {"everything": counted_everything(workdir, spawns)}), **CAPABLE) as p:
        # In the window where the proxy used to restart the upstream.
        for _ in range(10):
            await p.client.subscribe_resource(UNLISTED_URI)
            await p.client.unsubscribe_resource(UNLISTED_URI)
            await anyio.sleep(0.07)


async def test_subscribe_while_the_upstream_restarts_waits_for_it(workdir: Path) -> None:
    # A long restart delay: the request surely arrives between processes.
    restart = {"restart-backoff": {"base": "2s", "max": "4s"}}
    servers = {"everything": {"command": "node", "args": [str(EVERYTHING_JS), "stdio"], **restart}}
    async with proxy(mender_toml(workdir, servers)) as p:
        before = await p.wait_ready("everything")
        os.kill(before["pid"], signal.SIGKILL)
        await p.wait_for("the crash noticed", lambda: p.upstream("everything")["restarts"] >= 1)
        try:
            with anyio.fail_after(20):
                await p.client.subscribe_resource(UNLISTED_URI)
        except MCPError as e:
            pytest.fail(f"subscribe during a restart failed: {e}")
        after = await p.wait_ready("everything")
        assert after["pid"] != before["pid"]
        await p.client.unsubscribe_resource(UNLISTED_URI)
