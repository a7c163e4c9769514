"""The official TypeScript SDK's client in front of mender, as the Python
`mcp` client is in the other files: `@modelcontextprotocol/sdk` 1.x (the
handshake era) and `@modelcontextprotocol/client` 2.x (the handshake, and
the stateless 2026-07-28 era against a front with `stateless-clients`),
each through `mender mcp-proxy --listen` to server-everything run both
ways, over stdio and in `streamableHttp` mode (a remote `url` upstream).

The client (tests/mcp/ts_client.mjs) gathers what it saw; this file checks
it: the listings equal the server's own (whole objects for a stdio server;
what rmcp models for a remote one), progress reaches the caller in order,
sampling and elicitation reach it and their answers reach the server
(handshake era), an aborted call ends at once, is cancelled upstream and
leaves the gateway serving, and eight clients at once each get their own
answers and only their own progress, every call answered exactly once."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import EVERYTHING_JS, HERE, NODE22, TOOLS, free_port, listening, mender_bin, mender_status, mender_toml
from http_proxy import FaultProxy
from test_remote import HttpEverything

TOKEN = "ts-front-token-41c9e07d"
CLIENTS = 8

# (SDK generation, era): what each SDK can speak. SDK 1.x knows only the
# handshake; 2.x speaks both and is pinned to each in turn.
CLIENT_KINDS = {
    "sdk1-handshake": ("v1", "legacy"),
    "sdk2-handshake": ("v2", "legacy"),
    "sdk2-2026": ("v2", "2026-07-28"),
}


@contextmanager
def upstream(kind: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], FaultProxy | None]]:
    """server-everything as `kind` ("stdio" or "http"): its [mcp.servers]
    table, how the client reaches it directly, and (for http) the recording
    proxy mender reaches it through."""
    if kind == "stdio":
        spec = {"command": "node", "args": [str(EVERYTHING_JS), "stdio"]}
        yield spec, {"command": "node", "args": spec["args"]}, None
        return
    server = HttpEverything()
    server.start()
    try:
        with FaultProxy(server.port) as faults:
            yield {"url": faults.url()}, {"url": f"http://127.0.0.1:{server.port}/mcp"}, faults
    finally:
        server.stop()


@contextmanager
def front(workdir: Path, spec: dict[str, Any], stateless: bool) -> Iterator[tuple[str, Path]]:
    """`mender mcp-proxy --listen` in front of `spec`, its token in a
    `--token-file`; yields its URL and config."""
    config = mender_toml(workdir, {"everything": {**spec, "call-timeout": "60s"}})
    if stateless:
        config.write_text(config.read_text().replace("[mcp]\n", "[mcp]\nstateless-clients = true\n", 1))
    tokens = workdir / "tokens"
    tokens.write_text(f"# the one client token\n{TOKEN}\n")
    port = free_port()
    command = [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--token-file", str(tokens)]
    log = workdir / "front.log"
    try:
        with listening(command, port, log) as (url, _):
            yield url, config
    finally:
        print(f"--- mender mcp-proxy log ---\n{log.read_text(errors='replace')[-20000:]}")


def run_client(plan: dict[str, Any]) -> dict[str, Any]:
    """Runs ts_client.mjs with `plan` from beside the installed SDKs (so its
    imports resolve) under Node 22; its JSON report."""
    npm = TOOLS / "npm"
    script = npm / "mender-ts-client.mjs"
    shutil.copyfile(HERE / "ts_client.mjs", script)
    out = subprocess.run(
        [str(NODE22), str(script), json.dumps(plan)], cwd=npm, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, f"ts_client.mjs failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return json.loads(out.stdout)


def modelled(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A remote server's tools pass through rmcp's typed model (see
    # docs/gateway.md): compare the fields every client relies on.
    return [{k: t[k] for k in ("name", "description", "inputSchema", "annotations") if k in t} for t in tools]


def differences(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """What differs between two listings, item by item, for a message."""
    key = lambda i: i.get("name") or i.get("uri") or i.get("uriTemplate")  # noqa: E731
    got_by, want_by = {key(i): i for i in got}, {key(i): i for i in want}
    lines = [f"only through mender: {sorted(set(got_by) - set(want_by))}", f"only direct: {sorted(set(want_by) - set(got_by))}"]
    for name in sorted(set(got_by) & set(want_by)):
        if got_by[name] != want_by[name]:
            lines.append(f"{name}:\n  direct: {json.dumps(want_by[name])}\n  mender: {json.dumps(got_by[name])}")
    return "\n".join(lines)


def without(items: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in i.items() if k != field} for i in items]


def check_progress(progress: list[float], steps: int, who: str) -> None:
    # In order, none beyond the call's own steps (a client with 2 steps that
    # saw a 3 saw another client's), and at most the last one lost: the SDK
    # drops progress that arrives after the result, which server-everything
    # may send in the same breath (the 2.x client does so directly too).
    assert progress == sorted(set(progress)), (who, progress)
    assert set(progress) <= set(range(1, steps + 1)), (who, steps, progress)
    assert len(progress) >= steps - 1, (who, steps, progress)


@pytest.mark.parametrize("client_kind", list(CLIENT_KINDS))
@pytest.mark.parametrize("upstream_kind", ["stdio", "http"])
def test_typescript_sdk_client_through_the_http_front(workdir: Path, upstream_kind: str, client_kind: str) -> None:
    generation, era = CLIENT_KINDS[client_kind]
    handshake = era == "legacy"
    with ExitStack() as stack:
        spec, direct, faults = stack.enter_context(upstream(upstream_kind))
        url, config = stack.enter_context(front(workdir, spec, stateless=not handshake))
        report = run_client(
            {
                "sdk": generation,
                "era": era,
                "proxy": {"url": url, "token": TOKEN},
                "direct": direct,
                "clients": CLIENTS,
                # A handshake-era server's own requests cannot reach a
                # 2026-era client (docs/gateway.md, "Both protocol eras").
                "interactive": handshake,
            }
        )
        [up] = mender_status(config)["upstreams"]
        cancels = sum(1 for s in faults.seen if s.rpc_method == "notifications/cancelled") if faults else None

    assert report["protocol"] == ("2025-11-25" if handshake else "2026-07-28"), report["protocol"]

    # Listing equality with the server itself (its conditional tools too:
    # the upstream was offered this client's sampling, elicitation and roots,
    # in its `_meta` for the 2026 client).
    got, want = report["proxy"], report["direct"]
    if not handshake:
        # 2026-07-28 deleted the tools' `execution` field: the 2.x client
        # drops it from what it reads in that era (its codec's "deleted
        # vocabulary"), while the direct listing is read on the handshake.
        got = {**got, "tools": without(got["tools"], "execution")}
        want = {**want, "tools": without(want["tools"], "execution")}
    assert "trigger-sampling-request" in [t["name"] for t in want["tools"]], want["tools"]
    if upstream_kind == "stdio":
        for listing in want:
            assert got[listing] == want[listing], differences(got[listing], want[listing])
    else:
        assert modelled(got["tools"]) == modelled(want["tools"])
        for listing in ("prompts", "resources", "resourceTemplates"):
            assert [i.get("name") for i in got[listing]] == [i.get("name") for i in want[listing]], listing

    progress = report["progress"]
    assert not progress["isError"] and "Steps: 4" in progress["text"], progress
    check_progress(progress["progress"], 4, "first client")

    if handshake:
        assert not report["sampling"]["isError"], report["sampling"]
        assert "sampled by the TypeScript client" in report["sampling"]["text"], report["sampling"]
        assert not report["elicitation"]["isError"], report["elicitation"]
        assert "Grace Hopper" in report["elicitation"]["text"], report["elicitation"]

    cancel = report["cancel"]
    assert not cancel["answered"], cancel
    assert cancel["endedAfterMs"] < 2000, cancel
    assert cancel["echoAfter"] == "Echo: after the cancel", cancel
    if faults is not None:
        # mender told the remote server (a handshake-era upstream) too.
        assert cancels == 1, [(s.method, s.rpc_method, s.status) for s in faults.seen]

    # Many clients at once: each answered exactly once, with its own answer.
    assert sorted(r["client"] for r in report["many"]) == list(range(CLIENTS))
    for r in report["many"]:
        i = r["client"]
        assert r["echoes"] == [f"Echo: ts client {i} call {k}" for k in range(3)], r
        assert not r["slow"]["isError"] and f"Steps: {2 + i % 3}" in r["slow"]["text"], r
        check_progress(r["slow"]["progress"], 2 + i % 3, f"client {i}")
    # Every tools/call went upstream exactly once: the first client's five
    # (progress, sampling, elicitation, the cancelled call, echo) or three,
    # and four per other client.
    first = 5 if handshake else 3
    assert up["calls"] == first + 4 * CLIENTS, up
    if faults is not None:
        assert faults.posts("tools/call") == first + 4 * CLIENTS
