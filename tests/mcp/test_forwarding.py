"""What the proxy forwards besides tool calls: requests an upstream sends
the client (sampling, roots, elicitation), log messages, and the client's cancellation of
a call in flight. Upstreams start on the client's `initialize`, offered its
capabilities, so a server that adds tools per client capability
(server-everything does) lists the same tools through the proxy as
directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import direct, dumped, everything, mender_toml, proxy, same_listing, text, write_server
from mcp import Client
from mcp.client.stdio import stdio_client

pytestmark = pytest.mark.anyio

ROOT_URI = "file:///srv/mender-test-root"


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled by the test client"),
        model="test-model",
    )


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="test root")])


async def elicit(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace"})


CAPABLE = {"sampling_callback": sample, "list_roots_callback": roots, "elicitation_callback": elicit}


async def test_sampling_roots_and_elicitation_requests_reach_the_client(workdir: Path) -> None:
    spec = everything()
    async with Client(stdio_client(direct(spec)), cache=None, **CAPABLE) as c:
        want = dumped((await c.list_tools()).tools)
    assert "trigger-sampling-request" in [t["name"] for t in want], "the server offers it to a sampling client"

    async with proxy(mender_toml(workdir, {"everything": spec}), **CAPABLE) as p:
        # The upstream started knowing the client's capabilities; the
        # wait only guards against a slow first listing.
        async def listing() -> list[dict[str, Any]]:
            return dumped((await p.client.list_tools()).tools)

        with anyio.fail_after(20):
            while "trigger-sampling-request" not in [t["name"] for t in await listing()]:
                await anyio.sleep(0.2)
        assert same_listing(await listing(), want) == ""

        result = await p.client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
        assert not result.is_error, text(result)
        assert "sampled by the test client" in text(result)

        result = await p.client.call_tool("get-roots-list", {})
        assert not result.is_error, text(result)
        assert ROOT_URI in text(result)

        result = await p.client.call_tool("trigger-elicitation-request", {})
        assert not result.is_error, text(result)
        assert "Ada Lovelace" in text(result), text(result)


async def test_log_messages_reach_the_client(workdir: Path) -> None:
    received = anyio.Event()
    messages: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        messages.append(params)
        received.set()

    async with proxy(mender_toml(workdir, {"everything": everything()}), logging_callback=on_log) as p:
        await p.wait_ready("everything")
        result = await p.client.call_tool("toggle-simulated-logging", {})
        assert not result.is_error, text(result)
        # server-everything sends one at once, then one every 5 s.
        with anyio.fail_after(8):
            await received.wait()
        assert "message" in str(messages[0].data).lower(), messages


async def test_a_cancelled_call_is_cancelled_upstream(workdir: Path) -> None:
    log = workdir / "writes.log"
    async with proxy(mender_toml(workdir, {"writes": write_server(log)})) as p:
        await p.wait_ready("writes")
        with anyio.move_on_after(1.5):
            await p.client.call_tool("slow_write", {"note": "n1", "seconds": 30})
        with anyio.fail_after(5):
            while "cancelled n1" not in (log.read_text() if log.exists() else ""):
                await anyio.sleep(0.1)
        # Not retried, not run again: one start, one cancellation.
        lines = log.read_text().splitlines()
        assert [line.split()[-1] for line in lines] == ["n1", "n1"], lines
        # The proxy still serves.
        result = await p.client.call_tool("slow_write", {"note": "n2"})
        assert text(result) == "wrote n2", text(result)
