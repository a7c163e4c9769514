"""W3C trace context over HTTP on both sides of the gateway: a client's
`traceparent` header on the HTTP front (`--listen`) reaches a remote
(Streamable HTTP) upstream as its `traceparent` header and as the
request's `_meta.traceparent`. No span exporter here, so the gateway
passes the client's context on unchanged (tests/otlp.rs covers the
exported spans, whose own context is sent instead)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from conftest import await_port, free_port, listening, mender_bin, mender_toml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_the_clients_traceparent_header_reaches_an_http_upstream(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace_file = workdir / "traces"
    monkeypatch.setenv("TRACE_FILE", str(trace_file))
    server = [sys.executable, str(HERE / "trace_http_server.py")]
    with listening(server, free_port(), workdir / "upstream.log") as (url, _):
        config = mender_toml(workdir, {"remote": {"url": url}})
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with open(workdir / "front.stderr", "w") as err:
            gateway = subprocess.Popen(
                [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        try:
            await_port(port, gateway, workdir / "front.stderr")
            http = create_mcp_http_client(headers={"traceparent": TRACEPARENT})
            with anyio.fail_after(30):
                async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
                    result = await client.call_tool("whoami", {})
            assert not result.is_error, result
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(10)
    seen = [json.loads(line) for line in trace_file.read_text().splitlines()]
    calls = [s for s in seen if s["method"] == "tools/call"]
    assert calls, seen
    for call in calls:
        assert call["header"] == TRACEPARENT, seen
        assert call["meta"] == TRACEPARENT, seen
