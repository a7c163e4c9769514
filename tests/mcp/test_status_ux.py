"""What `mender status` tells a user: the last call that failed (not only
process failures), and a hung server as `unresponsive` rather than
`ready`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest
from conftest import everything, mender_bin, mender_toml, proxy, stopped, text
from test_secrets import raw_server

pytestmark = pytest.mark.anyio


async def test_status_shows_the_last_failed_call(workdir: Path) -> None:
    config = mender_toml(workdir, {"raw": raw_server(workdir)})
    async with proxy(config) as p:
        r = await p.client.call_tool("reject", {})
        assert r.is_error, text(r)
        raw = p.upstream("raw")
        assert raw["last_call_error"] and "reject" in raw["last_call_error"], raw
        assert "[REDACTED]" in raw["last_call_error"], raw
        assert raw["last_call_error_kind"], raw
        table = subprocess.run([mender_bin(), "status", "--config", str(config)], capture_output=True, text=True, timeout=10)
        assert "call failed" in table.stdout and "reject" in table.stdout, table.stdout


async def test_a_hung_server_shows_unresponsive_until_it_answers(workdir: Path) -> None:
    spec = everything(**{"call-timeout": "2s", "ping-timeout": "1s", "restart-on-hang": False})
    async with proxy(mender_toml(workdir, {"everything": spec})) as p:
        up = await p.wait_ready("everything")
        async with stopped(up["pid"]):
            r = await p.client.call_tool("echo", {"message": "anyone?"})
            assert r.is_error, text(r)
            await p.wait_for("unresponsive", lambda: p.upstream("everything")["state"] == "unresponsive", timeout=15)
            assert p.upstream("everything")["pid"] == up["pid"]
        # Resumed: the next call is answered and the state is ready again.
        with anyio.fail_after(20):
            r = await p.client.call_tool("echo", {"message": "back"})
        assert not r.is_error and "back" in text(r), text(r)
        await p.wait_for("ready again", lambda: p.upstream("everything")["state"] == "ready")
