"""Upstreams that cannot start. A required one stops the proxy with a message
that names it; an optional one is left out while the others serve, shown
`down` by `mender status`, and retried until it starts, at which point its
tools appear and the client is told the list changed."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
from conftest import (
    VENV_BIN,
    direct,
    dumped,
    everything,
    mender_bin,
    mender_toml,
    proxy,
    text,
    time_server,
)
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.subscriptions import ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

pytestmark = pytest.mark.anyio

# The initialize request of a 2025-11-25 client, for driving the proxy by hand.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mender-tests", "version": "0"},
    },
}


def test_a_required_server_that_cannot_start_stops_the_proxy(workdir: Path) -> None:
    missing = workdir / "no-such-server"
    config = mender_toml(workdir, {"everything": everything(), "broken": {"command": str(missing)}})
    proc = subprocess.Popen(
        [mender_bin(), "mcp-proxy", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    # A client would send this first; whether the proxy fails before or
    # after reading it, it must exit, not serve half its servers.
    try:
        proc.stdin.write(json.dumps(INITIALIZE) + "\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the proxy kept running without its required server:\n{stderr}")
    assert proc.returncode != 0, stderr
    assert "broken" in stderr, stderr
    assert str(missing) in stderr, stderr
    # stdout is the MCP channel: no logs there (at most a JSON-RPC error).
    for line in stdout.splitlines():
        assert json.loads(line).get("jsonrpc") == "2.0", stdout


async def test_an_optional_server_that_cannot_start_is_left_out(workdir: Path) -> None:
    missing = workdir / "no-such-server"
    servers = {
        "time": time_server(),
        "broken": {"command": str(missing), "optional": True, "restart-backoff": {"base": "250ms", "max": "1s"}},
    }
    async with Client(direct(servers["time"]), cache=None) as client:
        want = dumped((await client.list_tools()).tools)

    config = mender_toml(workdir, servers)
    async with proxy(config) as p:
        assert dumped((await p.client.list_tools()).tools) == want
        r = await p.client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not r.is_error and "UTC" in text(r), text(r)

        status = p.status()
        assert status["pid"] > 0, status
        broken = p.upstream("broken")
        assert broken["state"] in ("down", "restarting") and broken["optional"] is True, broken
        assert broken["pid"] is None and broken["tools"] == 0, broken
        assert broken["last_error"] and str(missing) in broken["last_error"], broken
        assert p.upstream("time")["state"] == "ready"

        # The human table says the same.
        table = subprocess.run(
            [mender_bin(), "status", "--config", str(config)], capture_output=True, text=True, timeout=10
        )
        assert table.returncode == 0, table.stderr
        assert "broken" in table.stdout and "time" in table.stdout, table.stdout


async def test_an_optional_server_comes_back_when_it_can_start(workdir: Path) -> None:
    script = workdir / "late-server"
    servers = {
        "everything": everything(),
        "late": {"command": str(script), "optional": True, "restart-backoff": {"base": "250ms", "max": "1s"}},
    }
    async with proxy(mender_toml(workdir, servers)) as p:
        await p.wait_for("late to be down", lambda: p.upstream("late")["last_error"])
        names = {t.name for t in (await p.client.list_tools()).tools}
        assert "echo" in names and "get_current_time" not in names, names

        # On a 2026-07-28 connection list changes come on a listen stream,
        # not as notifications: open it before the change.
        async with AsyncExitStack() as stack:
            events = None
            if p.client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                events = await stack.enter_async_context(p.client.listen(tools_list_changed=True))

            # Written elsewhere and renamed into place: the proxy never sees
            # a half-written or not yet executable file.
            draft = workdir / "late-server.draft"
            draft.write_text(f"#!/bin/sh\nexec {VENV_BIN / 'mcp-server-time'} --local-timezone UTC\n")
            draft.chmod(0o755)
            os.rename(draft, script)

            await p.wait_ready("late", timeout=10)
            # The change is announced (it may trail the state change a little).
            with anyio.fail_after(5):
                if events is None:
                    while "notifications/tools/list_changed" not in p.methods():
                        await anyio.sleep(0.05)
                else:
                    async for event in events:
                        if isinstance(event, ToolsListChanged):
                            break

        names = {t.name for t in (await p.client.list_tools()).tools}
        assert {"echo", "get_current_time", "convert_time"} <= names, names
        r = await p.client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not r.is_error, text(r)
        late = p.upstream("late")
        assert late["tools"] == 2 and late["pid"], late


def test_status_without_a_proxy_says_so(workdir: Path) -> None:
    config = mender_toml(workdir, {"time": time_server()})
    out = subprocess.run(
        [mender_bin(), "status", "--config", str(config), "--json"], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout == "", out.stdout
    assert "status.sock" in out.stderr or "mcp-proxy" in out.stderr, out.stderr


async def test_a_servers_credentials_never_reach_logs_or_status(workdir: Path) -> None:
    # A server that echoes its token on stderr and dies: the token must show
    # up neither in the proxy's log nor in `mender status`.
    token = "tok-3f9a1c7e5b2d4680"
    script = workdir / "leaky-server"
    script.write_text('#!/bin/sh\necho "starting with API_TOKEN=$API_TOKEN" >&2\nexit 1\n')
    script.chmod(0o755)
    servers = {
        "time": time_server(),
        "leaky": {"command": str(script), "optional": True, "env": {"API_TOKEN": token}},
    }
    config = mender_toml(workdir, servers)
    async with proxy(config) as p:
        leaky = await p.wait_for("leaky down", lambda: (u := p.upstream("leaky"))["last_error"] and u)
        assert "starting with API_TOKEN=[REDACTED]" in leaky["last_error"], leaky
        table = subprocess.run(
            [mender_bin(), "status", "--config", str(config)], capture_output=True, text=True, timeout=10
        )
        assert token not in table.stdout
    assert "API_TOKEN=[REDACTED]" in p.stderr()
    assert token not in p.stderr()


async def test_two_gateways_on_one_config_both_serve(workdir: Path) -> None:
    # Two MCP clients, each starting the same gateway: the second serves
    # its client without the status socket the first holds, and leaving
    # does not take the first one's socket with it.
    config = mender_toml(workdir, {"time": time_server()})
    async with proxy(config) as first:
        first_pid = first.status()["pid"]
        second_log = workdir / "second.stderr"
        async with AsyncExitStack() as stack:
            with open(second_log, "w") as errlog:
                params = StdioServerParameters(command=mender_bin(), args=["mcp-proxy", "--config", str(config)])
                second = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), cache=None))
                r = await second.call_tool("get_current_time", {"timezone": "UTC"})
                assert not r.is_error and "UTC" in text(r), text(r)
        assert "no status for `mender status`" in second_log.read_text()
        # The second is gone; the first still answers, on its socket.
        assert first.status()["pid"] == first_pid
        r = await first.client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not r.is_error, text(r)
