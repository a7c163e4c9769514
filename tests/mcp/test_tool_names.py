"""Names across servers: a tool, prompt or resource collision is warned
about in the log, once per name (the first server in name order wins); `prefix` keeps both servers' tools;
`allow-tools`/`deny-tools` narrow what a server offers, and bad entries are
config errors naming the file and line. `mender check` says when a
server's command is not on the PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import direct, dumped, everything, mender_bin, mender_toml, proxy, text, time_server
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.anyio


async def test_a_collision_is_warned_and_a_prefix_keeps_both(workdir: Path) -> None:
    servers = {"a": everything(), "b": everything()}
    async with proxy(mender_toml(workdir, servers)) as p:
        names = [t.name for t in (await p.client.list_tools()).tools]
        assert names.count("echo") == 1, names
        # Prompts and resources collide too, and are warned about when listed.
        prompts = [x.name for x in (await p.client.list_prompts()).prompts]
        resources = [str(x.uri) for x in (await p.client.list_resources()).resources]
        assert prompts and len(prompts) == len(set(prompts)), prompts
        assert resources and len(resources) == len(set(resources)), resources
    log = p.stderr()
    assert "tool name collision" in log and "`echo`" in log, log[-3000:]
    assert "hidden" in log and "`b`" in log, log[-3000:]
    assert f"prompt name collision: MCP server `b`'s prompt `{prompts[0]}`" in log, log[-3000:]
    assert f"resource name collision: MCP server `b`'s resource `{resources[0]}`" in log, log[-3000:]
    assert "`prefix` renames tools only" in log, log[-3000:]
    # Once per name, however often the client lists.
    assert log.count(f"prompt `{prompts[0]}` is hidden") == 1, log[-3000:]

    async with Client(stdio_client(direct(everything())), cache=None) as c:
        want = dumped((await c.list_tools()).tools)
    servers = {"a": everything(), "b": everything(prefix="b_")}
    async with proxy(mender_toml(workdir, servers)) as p:
        tools = dumped((await p.client.list_tools()).tools)
        names = [t["name"] for t in tools]
        assert "echo" in names and "b_echo" in names, names
        # The prefixed definitions are the server's own, renamed.
        prefixed = {t["name"].removeprefix("b_"): t for t in tools if t["name"].startswith("b_")}
        for tool in want:
            assert prefixed[tool["name"]] == {**tool, "name": "b_" + tool["name"]}, tool["name"]
        r = await p.client.call_tool("b_echo", {"message": "via b"})
        assert not r.is_error and "via b" in text(r), text(r)
        assert p.upstream("b")["calls"] == 1 and p.upstream("a")["calls"] == 0
    assert "tool name collision" not in p.stderr()


async def test_allow_and_deny_lists(workdir: Path) -> None:
    servers = {"time": time_server(**{"allow-tools": ["get_*"]})}
    async with proxy(mender_toml(workdir, servers)) as p:
        names = [t.name for t in (await p.client.list_tools()).tools]
        assert names == ["get_current_time"], names
        with pytest.raises(MCPError):
            await p.client.call_tool("convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "UTC"})

    servers = {"time": time_server(**{"deny-tools": ["get_current_time"]})}
    async with proxy(mender_toml(workdir, servers)) as p:
        names = [t.name for t in (await p.client.list_tools()).tools]
        assert names == ["convert_time"], names
        with pytest.raises(MCPError):
            await p.client.call_tool("get_current_time", {"timezone": "UTC"})


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mender_bin(), "check", str(config)], capture_output=True, text=True, timeout=60)


def test_bad_tool_lists_are_config_errors_with_a_line(workdir: Path) -> None:
    config = mender_toml(workdir, {"time": time_server(**{"allow-tools": ["x"], "deny-tools": ["x"]})})
    out = check(config)
    assert out.returncode != 0, out.stdout
    line = next(i for i, l in enumerate(config.read_text().splitlines(), 1) if l.startswith("deny-tools"))
    assert f"{config}:{line}" in out.stderr and "deny-tools" in out.stderr, out.stderr


def test_check_says_when_a_command_is_not_on_the_path(workdir: Path) -> None:
    config = mender_toml(workdir, {"time": time_server(), "ghost": {"command": "no-such-mcp-server-7c1"}})
    out = check(config)
    assert out.returncode == 0, out.stderr
    assert "no-such-mcp-server-7c1" in out.stdout and "not on the PATH" in out.stdout, out.stdout
    warned = [l for l in out.stdout.splitlines() if "warning" in l]
    assert len(warned) == 1 and "ghost" in warned[0], out.stdout
