"""The proxy is transparent for listings: what a client sees through it is
what it would see talking to the upstream directly, object for object, and
with several upstreams the union. Reads and prompts pass through too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import direct, dumped, everything, fetch_server, mender_toml, proxy, same_listing, text, time_server
from mcp import Client

pytestmark = pytest.mark.anyio


async def direct_tools(spec: dict[str, Any]) -> list[dict[str, Any]]:
    async with Client(direct(spec), cache=None) as client:
        return dumped((await client.list_tools()).tools)


@pytest.mark.parametrize(
    "name, spec",
    [("everything", everything()), ("time", time_server()), ("fetch", fetch_server())],
)
async def test_tools_list_equals_the_direct_listing(workdir: Path, name: str, spec: dict[str, Any]) -> None:
    want = await direct_tools(spec)
    assert want, f"{name} lists no tools directly"
    async with proxy(mender_toml(workdir, {name: spec})) as p:
        got = dumped((await p.client.list_tools()).tools)
    assert not (diff := same_listing(got, want)), diff


async def test_two_upstreams_list_the_union(workdir: Path) -> None:
    servers = {"everything": everything(), "time": time_server()}
    want = sorted(
        [t for spec in servers.values() for t in await direct_tools(spec)],
        key=lambda t: t["name"],
    )
    async with proxy(mender_toml(workdir, servers)) as p:
        got = dumped((await p.client.list_tools()).tools)
        # Both are callable through the one connection.
        echo = await p.client.call_tool("echo", {"message": "hi"})
        now = await p.client.call_tool("get_current_time", {"timezone": "UTC"})
    assert not (diff := same_listing(got, want)), diff
    assert not echo.is_error and text(echo) == "Echo: hi"
    assert not now.is_error and "UTC" in text(now), text(now)


async def test_resources_and_prompts_pass_through(workdir: Path) -> None:
    spec = everything()
    async with Client(direct(spec), cache=None) as client:
        want_resources = dumped((await client.list_resources()).resources)
        want_prompts = dumped((await client.list_prompts()).prompts)
    assert want_resources and want_prompts

    async with proxy(mender_toml(workdir, {"everything": spec})) as p:
        assert dumped((await p.client.list_resources()).resources) == want_resources
        assert dumped((await p.client.list_prompts()).prompts) == want_prompts

        # One read and one prompt, compared with what the upstream says of
        # the same resource and prompt.
        uri = want_resources[0]["uri"]
        read = await p.client.read_resource(uri)
        assert read.contents and str(read.contents[0].uri) == uri
        prompt = await p.client.get_prompt("simple-prompt")
        assert prompt.messages, prompt

    async with Client(direct(spec), cache=None) as client:
        direct_read = await client.read_resource(uri)
        direct_prompt = await client.get_prompt("simple-prompt")
    assert dumped(read.contents) == dumped(direct_read.contents)
    assert [m.model_dump(mode="json") for m in prompt.messages] == [
        m.model_dump(mode="json") for m in direct_prompt.messages
    ]
