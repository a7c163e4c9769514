"""`mender mcp-proxy --listen`: one gateway, many clients over Streamable
HTTP. Real clients (the Python `mcp` client's HTTP transport, eight at
once) in front, server-everything (stdio) behind.

Every client's calls are answered exactly once with its own answer, and
progress reaches only the client that asked for it; a missing or wrong
bearer token is a 401 with `WWW-Authenticate`, a browser `Origin` not
allowed is a 403, an oversized body a 413, a foreign `Host` is refused —
and none of them reaches the upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import everything, mender_bin, mender_status, mender_toml, text
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio

TOKEN = "mcp-front-token-5e8d1c"
TOKEN_B = "mcp-front-token-b-77a0f3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Front:
    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.config = mender_toml(workdir, {"everything": everything()})
        self.stderr_path = workdir / "front.stderr"
        env = {**os.environ, "MENDER_TOKENS": f"{TOKEN},{TOKEN_B}"}
        with open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [mender_bin(), "mcp-proxy", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}", *extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"no listener on {self.port}: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, token: str | None = TOKEN) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = create_mcp_http_client(headers=headers)
        return Client(streamable_http_client(self.url, http_client=http), cache=None)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, {k.lower(): v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}


@pytest.fixture
def front(workdir: Path) -> Iterator[Front]:
    f = Front(workdir)
    try:
        yield f
    finally:
        f.stop()
        print(f"--- mender mcp-proxy stderr ---\n{f.stderr()[-20000:]}")


async def test_many_clients_each_get_their_own_answers(front: Front) -> None:
    results: dict[int, Any] = {}
    progress: dict[int, list[float]] = {i: [] for i in range(8)}

    async def agent(i: int) -> None:
        async with front.client() as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "echo" in tools, tools
            echoed = [await client.call_tool("echo", {"message": f"client {i} call {n}"}) for n in range(3)]

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress[i].append(value)

            slow = await client.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 2 + i % 3}, progress_callback=on_progress
            )
            results[i] = (echoed, slow)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(agent, i)

    for i in range(8):
        echoed, slow = results[i]
        assert [text(r) for r in echoed] == [f"Echo: client {i} call {n}" for n in range(3)], echoed
        assert not slow.is_error, text(slow)
        # Each client saw exactly its own operation's steps, in order.
        steps = 2 + i % 3
        assert progress[i] == sorted(progress[i]) and len(progress[i]) == steps, (i, progress)

    status = mender_status(front.config)
    [up] = status["upstreams"]
    assert up["state"] == "ready" and up["calls"] == 8 * 4, up


async def test_tokens_origins_hosts_and_sizes_are_checked_before_anything_runs(front: Front) -> None:
    initialize = (
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
        b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
    )
    status, headers = front.post(initialize, {})
    assert status == 401 and "Bearer" in headers.get("www-authenticate", ""), (status, headers)
    status, headers = front.post(initialize, {"Authorization": "Bearer wrong-token-0000000"})
    assert status == 401 and 'error="invalid_token"' in headers.get("www-authenticate", ""), (status, headers)

    ok = {"Authorization": f"Bearer {TOKEN}"}
    status, _ = front.post(initialize, {**ok, "Origin": "https://evil.example"})
    assert status == 403, status
    status, _ = front.post(initialize, {**ok, "Host": "evil.example"})
    assert status in (400, 403, 421), status
    status, _ = front.post(b"{" + b" " * (17 * 1024 * 1024) + b"}", ok)
    assert status == 413, status

    # None of those started the upstream (it starts on the first accepted
    # initialize): it is still waiting.
    [up] = mender_status(front.config)["upstreams"]
    assert up["calls"] == 0 and up["pid"] is None, up

    # A real client with the token gets through.
    async with front.client() as client:
        r = await client.call_tool("echo", {"message": "let in"})
    assert text(r) == "Echo: let in"
    assert TOKEN not in front.stderr()


def test_a_public_address_needs_tokens(workdir: Path) -> None:
    config = mender_toml(workdir, {"everything": everything()})
    env = {k: v for k, v in os.environ.items() if k != "MENDER_TOKENS"}
    out = subprocess.run(
        [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2, out
    assert "bearer tokens" in out.stderr, out.stderr


async def test_one_client_cannot_take_every_slot(workdir: Path) -> None:
    front = Front(workdir, "--max-in-flight-per-client", "2")
    try:
        outcomes: dict[str, list[str]] = {"a": [], "b": []}

        async def slow(client: Client, who: str) -> None:
            try:
                r = await client.call_tool("trigger-long-running-operation", {"duration": 2, "steps": 2})
                outcomes[who].append("error" if r.is_error else "ok")
            except Exception as e:  # the client's view of the 429
                outcomes[who].append(f"refused: {e!r}")

        async with front.client() as a, front.client(TOKEN_B) as b:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(slow, a, "a")
                    await anyio.sleep(0.5)
                    tg.start_soon(slow, b, "b")
        # Two of A's three ran; the third was refused. B was not held up.
        assert sorted(o == "ok" for o in outcomes["a"]) == [False, True, True], outcomes
        assert outcomes["b"] == ["ok"], outcomes
        [up] = mender_status(front.config)["upstreams"]
        assert up["calls"] == 3, up
    finally:
        front.stop()
        print(f"--- mender mcp-proxy stderr ---\n{front.stderr()[-20000:]}")
