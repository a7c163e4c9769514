"""Both MCP eras, on both sides of the gateway.

A front gateway (`mender mcp-proxy --listen`) serves server-everything
(stdio, 2025-11-25) over HTTP; with `[mcp] stateless-clients = true` it
accepts 2026-07-28 clients as well. The Python `mcp` 2.x client, which
speaks both eras and prefers the newer, negotiates 2026-07-28 with it. A second
gateway reaches that front as a remote server with `protocol =
"2026-07-28"` (stateless: `server/discover`, no session, no `ping`) and is
driven by the Python client (2025-11-25). So one call crosses 2025 → 2026
→ 2025: the Python client's handshake, the second gateway's 2026-era
client, the front's 2026-era server side, and the stdio server's
handshake. The liveness check on a 2026 server (no `ping`) still tells a
slow tool from a hung server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import everything, free_port, listening, mender_bin, mender_toml, proxy, reference_server, text
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio



def front(workdir: Path, stateless: bool = True):  # type: ignore[no-untyped-def]
    """server-everything behind `mender mcp-proxy --listen`; yields (url, pid)."""
    sub = workdir / ("front" if stateless else "front-handshake")
    sub.mkdir()
    config = mender_toml(sub, {"everything": everything()})
    if stateless:
        config.write_text(config.read_text().replace("[mcp]\n", "[mcp]\nstateless-clients = true\n", 1))
    port = free_port()
    command = [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    return listening(command, port, sub / "front.log")


async def test_a_2026_client_at_the_front(workdir: Path) -> None:
    with front(workdir) as (url, _):
        async with Client(streamable_http_client(url), cache=None) as c:
            assert c.protocol_version == "2026-07-28", c.protocol_version
            names = [t.name for t in (await c.list_tools()).tools]
            assert "echo" in names, names
            r = await c.call_tool("echo", {"message": "stateless"})
            assert not r.is_error and "stateless" in text(r), text(r)
    # Without the setting, the same client falls back to the handshake.
    with front(workdir, stateless=False) as (url, _):
        async with Client(streamable_http_client(url), cache=None) as c:
            assert c.protocol_version == "2025-11-25", c.protocol_version
            r = await c.call_tool("echo", {"message": "handshake"})
            assert not r.is_error and "handshake" in text(r), text(r)


async def test_a_2025_client_through_a_2026_hop_to_a_2025_server(workdir: Path) -> None:
    with front(workdir) as (url, front_pid):
        spec = {"url": url, "protocol": "2026-07-28", "call-timeout": "1500ms", "ping-timeout": "1s"}
        async with proxy(mender_toml(workdir, {"front": spec})) as p:
            up = await p.wait_for("front ready", lambda: (u := p.upstream("front"))["state"] == "ready" and u)
            assert up["protocol"] == "2026-07-28", up
            names = [t.name for t in (await p.client.list_tools()).tools]
            assert "echo" in names and "trigger-long-running-operation" in names, names
            r = await p.client.call_tool("echo", {"message": "across eras"})
            assert not r.is_error and "across eras" in text(r), text(r)

            # A slow tool: the call times out, the liveness probe (discover,
            # since there is no ping) is answered, the server is left alone.
            r = await p.client.call_tool("trigger-long-running-operation", {"duration": 3, "steps": 3})
            assert r.is_error, text(r)
            await p.wait_for("the probe", lambda: "pinged the server" in p.stderr())
            assert "answered=true" in p.stderr(), p.stderr()[-3000:]
            assert p.upstream("front")["state"] == "ready", p.upstream("front")

            # A hung server: the probe goes unanswered too.
            os.kill(front_pid, signal.SIGSTOP)
            try:
                r = await p.client.call_tool("echo", {"message": "hung"})
                assert r.is_error, text(r)
                await p.wait_for("a probe without answer", lambda: "answered=false" in p.stderr(), timeout=15)
            finally:
                os.kill(front_pid, signal.SIGCONT)
            await p.wait_for("front ready again", lambda: p.upstream("front")["state"] == "ready", timeout=30)
            r = await p.client.call_tool("echo", {"message": "back"})
            assert not r.is_error and "back" in text(r), text(r)


async def test_auto_picks_each_servers_era(workdir: Path) -> None:
    with front(workdir) as (modern, _), reference_server(workdir / "reference.log") as (legacy, _):
        servers = {
            "modern": {"url": modern, "protocol": "auto"},
            # The suite's reference server (TypeScript SDK 1.x) knows only
            # the handshake: auto falls back to it.
            "legacy": {"url": legacy, "protocol": "auto", "prefix": "legacy_"},
        }
        async with proxy(mender_toml(workdir, servers)) as p:
            for name, want in [("modern", "2026-07-28"), ("legacy", "2025-11-25")]:
                up = await p.wait_for(
                    f"{name} ready", lambda n=name: (u := p.upstream(n))["state"] == "ready" and u, timeout=30
                )
                assert up["protocol"] == want, up
            r = await p.client.call_tool("echo", {"message": "modern"})
            assert not r.is_error and "modern" in text(r), text(r)
            r = await p.client.call_tool("legacy_test_simple_text", {})
            assert not r.is_error, text(r)
