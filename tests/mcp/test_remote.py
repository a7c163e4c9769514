"""Remote upstreams: server-everything in streamableHttp mode behind the
proxy as `url = …`, reached through a fault-injecting HTTP proxy
(http_proxy.py) that records what arrived and can answer errors instead.

The token in `headers` comes from the gateway's environment (`${NAME}`):
it reaches the server on every request and nothing else (log, status,
results). A 429 with Retry-After is a rate-limited attempt the pipeline
waits out; a server restarted under the gateway (its sessions gone, HTTP
404) gets a new session, the refused call reaching the pipeline as one
`connect` event tagged `session-expired` and re-issued only when safe; a
401 or 403 in the middle of a session is `auth`; a server that is down is
retried until it is back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import EVERYTHING_JS, call_meta, dumped, everything, mender_bin, mender_toml, proxy, same_listing, text
from http_proxy import FaultProxy
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

pytestmark = pytest.mark.anyio

TOKEN = "sk-remote-7f3a9c2e5b1d"
ENV = {"REMOTE_TOKEN": TOKEN}

PIPELINE = """
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "200ms", factor = 2.0, max-delay = "1s", max-attempts = 8, jitter = "none" }

[services.remote]
strategies = ["backoff"]
guardrails = { max-attempts = 8 }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpEverything:
    """server-everything serving Streamable HTTP on a fixed loopback port,
    which a test can stop and start again (a deploy: same address, no
    sessions)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PORT": str(self.port)}
        self.process = subprocess.Popen(
            ["node", str(EVERYTHING_JS), "streamableHttp"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"server-everything did not listen on {self.port} within 20 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def remote() -> Iterator[tuple[HttpEverything, FaultProxy]]:
    server = HttpEverything()
    server.start()
    try:
        with FaultProxy(server.port) as faults:
            yield server, faults
    finally:
        server.stop()


def remote_spec(faults: FaultProxy, **extra: Any) -> dict[str, Any]:
    return {
        "url": faults.url(),
        "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"},
        "call-timeout": "5s",
        **extra,
    }


async def wait_remote_ready(p: Any) -> dict[str, Any]:
    return await p.wait_for("remote ready", lambda: (u := p.upstream("remote"))["state"] == "ready" and u)


async def test_remote_tools_are_listed_and_called_with_the_token(workdir: Path, remote) -> None:
    server, faults = remote
    async with proxy(mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE), proxy_env=ENV) as p:
        await wait_remote_ready(p)
        listed = (await p.client.list_tools()).tools
        r = await p.client.call_tool("echo", {"message": "over http"})
        assert not r.is_error, text(r)
        assert "over http" in text(r)
        status = p.status()
        stderr = p.stderr()

    # The same tools as the server lists over stdio (the gateway's listing
    # of a remote server is rmcp's typed view: compare what it models).
    async with Client(stdio_client(StdioServerParameters(**{k: v for k, v in everything().items() if k in ("command", "args")}))) as direct:
        want = (await direct.list_tools()).tools
    assert sorted(t.name for t in listed) == sorted(t.name for t in want)
    assert not same_listing(
        [{k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in dumped(listed)],
        [{k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in dumped(want)],
    )

    # Every request carried the token; nothing mender wrote shows it.
    assert faults.seen and all(s.authorization == f"Bearer {TOKEN}" for s in faults.seen), faults.seen
    assert faults.posts("tools/call") == 1
    assert TOKEN not in stderr and TOKEN not in str(status)


async def test_a_429_with_retry_after_is_waited_out(workdir: Path, remote) -> None:
    server, faults = remote
    async with proxy(mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE), proxy_env=ENV) as p:
        await wait_remote_ready(p)
        faults.fail_next(1, 429, {"Retry-After": "1"}, only="tools/call")
        started = time.monotonic()
        r = await p.client.call_tool("echo", {"message": "after the limit"})
        took = time.monotonic() - started
    assert not r.is_error, text(r)
    [attempt] = call_meta(r)["attempts"]
    assert attempt["kind"] == "rate-limited" and attempt["status"] == 429, attempt
    assert attempt["step"] == "retry", attempt
    # The server's Retry-After (1 s), not the backoff's 200 ms.
    assert took >= 0.95, took
    assert faults.posts("tools/call") == 1


async def test_a_restarted_server_gets_a_new_session_and_only_safe_calls_are_reissued(workdir: Path, remote) -> None:
    server, faults = remote
    async with proxy(mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE), proxy_env=ENV) as p:
        await wait_remote_ready(p)
        r = await p.client.call_tool("echo", {"message": "one"})
        assert not r.is_error, text(r)
        initializes = sum(1 for s in faults.seen if s.rpc_method == "initialize")

        # A deploy: the process is replaced; the old session id is refused.
        server.stop()
        server.start()
        r = await p.client.call_tool("echo", {"message": "two"})
        assert not r.is_error, text(r)
        assert "two" in text(r)
        log = [(s.method, s.rpc_method, s.status) for s in faults.seen]
        assert sum(1 for s in faults.seen if s.rpc_method == "initialize") == initializes + 1, (log, p.stderr())
        # The spec's 404, or the 400 the reference TypeScript servers send.
        assert any(s.status in (400, 404) for s in faults.seen), log
        # One event through the pipeline, kind `connect` tagged
        # `session-expired`; echo is read-only, so it was re-issued.
        [attempt] = call_meta(r)["attempts"]
        assert attempt["kind"] == "connect" and attempt["tags"] == {"session-expired": "true"}, attempt
        assert attempt["step"] == "retry", attempt
        assert p.upstream("remote")["restarts"] == 0, p.upstream("remote")

        # A write is not re-issued: a clear error, and the tool never ran.
        server.stop()
        server.start()
        ran = faults.posts("tools/call")
        r = await p.client.call_tool("toggle-simulated-logging", {})
        assert r.is_error, text(r)
        assert text(r).startswith("mender:") and "session" in text(r), text(r)
        [attempt] = call_meta(r)["attempts"]
        assert attempt["kind"] == "connect" and attempt["tags"] == {"session-expired": "true"}, attempt
        assert attempt["step"] == "fail", attempt
        assert faults.posts("tools/call") == ran, [(s.rpc_method, s.status) for s in faults.seen]
        # The new session serves the next call at once.
        r = await p.client.call_tool("echo", {"message": "three"})
        assert not r.is_error and "io.mender/call" not in (r.meta or {}), (text(r), r.meta)


async def test_auth_failures_mid_session_are_auth(workdir: Path, remote) -> None:
    server, faults = remote
    async with proxy(mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE), proxy_env=ENV) as p:
        await wait_remote_ready(p)
        r = await p.client.call_tool("echo", {"message": "session up"})
        assert not r.is_error, text(r)
        # A revoked token, a lost permission: with and without a challenge.
        for status, headers in [
            (401, {}),
            (403, {}),
            (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}),
        ]:
            faults.fail_next(1, status, headers, only="tools/call")
            r = await p.client.call_tool("echo", {"message": "refused"})
            assert r.is_error, text(r)
            [attempt] = call_meta(r)["attempts"]
            # `auth`, not `connect`: backoff passes it, nothing is retried.
            assert attempt["kind"] == "auth" and attempt["status"] == status, (status, headers, attempt)
            assert attempt["step"] == "fail", attempt
        assert p.upstream("remote")["state"] == "ready", p.upstream("remote")
        assert TOKEN not in p.stderr()


async def test_a_server_that_is_down_is_retried_until_it_is_back(workdir: Path, remote) -> None:
    server, faults = remote
    async with proxy(mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE), proxy_env=ENV) as p:
        await wait_remote_ready(p)
        server.stop()
        result: dict[str, Any] = {}

        async def call() -> None:
            result["r"] = await p.client.call_tool("echo", {"message": "patience"})

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.sleep(1.0)
                server.start()
        r = result["r"]
        assert not r.is_error, text(r)
        attempts = call_meta(r)["attempts"]
        assert attempts and all(a["step"] == "retry" for a in attempts), attempts
        assert TOKEN not in p.stderr()


def test_config_errors_name_the_variable_and_line(workdir: Path) -> None:
    config = mender_toml(workdir, {"remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${MENDER_TEST_UNSET_TOKEN}"}}})
    out = subprocess.run([mender_bin(), "check", str(config)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "mender.toml:6" in out.stderr + out.stdout, out
    assert "`MENDER_TEST_UNSET_TOKEN` is not set" in out.stderr + out.stdout, out
    assert "`remote`" in out.stderr + out.stdout, out


def test_status_never_shows_the_token(workdir: Path) -> None:
    # `mender check` with the token set shows the server by its URL only.
    config = mender_toml(workdir, {"remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}}})
    out = subprocess.run(
        [mender_bin(), "check", str(config)], capture_output=True, text=True, timeout=30, env={**os.environ, **ENV}
    )
    assert out.returncode == 0, out
    assert "mcp server remote: http://127.0.0.1:9/mcp" in out.stdout, out
    assert TOKEN not in out.stdout + out.stderr


def mender_call(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [mender_bin(), "call", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_mender_call_lists_and_calls_a_url(remote) -> None:
    server, faults = remote
    listed = mender_call(faults.url())
    assert listed.returncode == 0, listed
    assert any(line.split("\t")[0] == "echo" for line in listed.stdout.splitlines()), listed.stdout

    header = ["--header", "Authorization: Bearer ${REMOTE_TOKEN}"]
    called = mender_call("--tool", "echo", "--args", '{"message": "one shot"}', *header, faults.url(), env=ENV)
    assert called.returncode == 0, called
    assert "one shot" in called.stdout
    assert any(s.authorization == f"Bearer {TOKEN}" for s in faults.seen if s.rpc_method == "tools/call")
    assert TOKEN not in called.stdout + called.stderr

    # An unknown tool is the server's error, and the exit status says so.
    failed = mender_call("--tool", "no-such-tool", faults.url())
    assert failed.returncode == 1, failed


def test_mender_call_a_configured_server_through_its_pipeline(workdir: Path, remote) -> None:
    server, faults = remote
    config = mender_toml(workdir, {"remote": remote_spec(faults)}, PIPELINE)
    faults.fail_next(1, 503, only="tools/call")
    called = mender_call("--config", str(config), "--json", "--tool", "echo", "--args", '{"message": "x"}', "remote", env=ENV)
    assert called.returncode == 0, called
    result = json.loads(called.stdout)
    [attempt] = result["_meta"]["io.mender/call"]["attempts"]
    assert attempt["status"] == 503 and attempt["step"] == "retry", attempt
    assert faults.posts("tools/call") == 1


def test_mender_call_says_what_is_wrong(workdir: Path) -> None:
    bad_args = mender_call("--tool", "echo", "--args", "[1]", "http://127.0.0.1:9/mcp")
    assert bad_args.returncode == 2 and "--args must be a JSON object" in bad_args.stderr, bad_args
    not_url = mender_call("remote")
    assert not_url.returncode == 2 and "give --config" in not_url.stderr, not_url
    port = free_port()
    down = mender_call(f"http://127.0.0.1:{port}/mcp")
    assert down.returncode == 1, down
    assert f"127.0.0.1:{port}" in down.stderr and "onnection refused" in down.stderr, down.stderr


def make_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it signed for `localhost`: (ca, chain, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=workdir)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=mender test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (workdir / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"


def test_tls_with_a_private_ca_and_a_wrong_one(workdir: Path) -> None:
    ca, chain, key = make_ca(workdir)
    server = HttpEverything()
    server.start()
    try:
        with FaultProxy(server.port, tls=(str(chain), str(key))) as tls:
            url = tls.url(host="localhost")
            # Trusted through ca-file: listed and called.
            config = mender_toml(workdir, {"remote": {"url": url, "ca-file": str(ca)}})
            ok = mender_call("--config", str(config), "--tool", "echo", "--args", '{"message": "over tls"}', "remote")
            assert ok.returncode == 0, ok
            assert "over tls" in ok.stdout
            # Without it the system roots do not know the CA: refused, and
            # the message says it is the certificate.
            down = mender_call(url)
            assert down.returncode == 1, down
            assert "certificate" in down.stderr.lower(), down.stderr
    finally:
        server.stop()
