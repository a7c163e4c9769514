"""A name no upstream lists, with one upstream that could own it: the proxy
forwards the request and the upstream answers as it would directly (its
own isError result or JSON-RPC error), instead of the proxy making up an
answer (an empty completion, its own "unknown tool" error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from conftest import direct, everything, mender_toml, proxy
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.anyio


async def outcome(call: Any) -> tuple[str, Any]:
    """What a request got: ("result", wire form) or ("error", (code, message))."""
    try:
        result = await call
    except MCPError as e:
        return "error", (e.code, e.message)
    return "result", result.model_dump(by_alias=True, exclude_none=True, mode="json")


async def asked(client: Client) -> list[tuple[str, Any]]:
    return [
        await outcome(client.call_tool("no-such-tool", {"a": 1})),
        await outcome(
            client.complete(types.PromptReference(type="ref/prompt", name="no-such-prompt"), {"name": "x", "value": "y"})
        ),
    ]


async def test_unknown_names_are_answered_by_the_upstream(workdir: Path) -> None:
    spec = everything()
    async with Client(stdio_client(direct(spec)), cache=None) as c:
        want = await asked(c)
    async with proxy(mender_toml(workdir, {"everything": spec})) as p:
        got = await asked(p.client)
    assert got == want, f"through the proxy: {got}\ndirect: {want}"
