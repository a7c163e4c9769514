"""A credential the config hands a server (in `env` or `args`) never reaches
the client through the proxy: not in the proxy's own error text, not in
`_meta`, not in a JSON-RPC error it passes on, and (by default,
`redact-results = "secrets"`) not in the server's own results either.
`redact-results = "none"` passes the server's results as sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, VENV_BIN, mender_toml, proxy, text
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.anyio

TOKEN = "sk-live-7f3a9c1e5b2d4f60"
ARG_KEY = "argkey-51c0ffee9a"
ARG_TOKEN = "argtok-0ddba11c4e"


def raw_server(workdir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "command": str(VENV_BIN / "python"),
        "args": [str(HERE / "raw_server.py"), "--api-key", ARG_KEY, f"--token={ARG_TOKEN}", "--verbose"],
        "env": {"API_TOKEN": TOKEN, "RUNS_FILE": str(workdir / "runs")},
        **extra,
    }


def wire(result: Any) -> str:
    return json.dumps(result.model_dump(by_alias=True, exclude_none=True, mode="json"))


async def test_secrets_stay_out_of_everything_the_client_gets(workdir: Path) -> None:
    async with proxy(mender_toml(workdir, {"raw": raw_server(workdir)})) as p:
        # The server's JSON-RPC error, in the proxy's own isError text.
        r = await p.client.call_tool("reject", {})
        assert r.is_error
        assert TOKEN not in wire(r), wire(r)
        assert "[REDACTED]" in text(r), text(r)

        # The server's own isError result.
        r = await p.client.call_tool("fail_secret", {})
        assert r.is_error
        assert TOKEN not in wire(r) and "[REDACTED]" in text(r), wire(r)

        # A plain result, holding the env secret and the args ones.
        r = await p.client.call_tool("echo_secret", {})
        assert not r.is_error, text(r)
        for secret in (TOKEN, ARG_KEY, ARG_TOKEN):
            assert secret not in wire(r), wire(r)
        assert "--verbose" in text(r), text(r)

        # A JSON-RPC error on a read.
        with pytest.raises(MCPError) as e:
            await p.client.read_resource("raw://anything")
        assert TOKEN not in str(e.value) and "[REDACTED]" in str(e.value), str(e.value)
    assert TOKEN not in p.stderr() and ARG_KEY not in p.stderr()


async def test_redact_results_none_passes_results_as_sent(workdir: Path) -> None:
    spec = raw_server(workdir, **{"redact-results": "none"})
    async with proxy(mender_toml(workdir, {"raw": spec})) as p:
        r = await p.client.call_tool("echo_secret", {})
        assert TOKEN in text(r) and ARG_KEY in text(r), text(r)
        # The proxy's own words are redacted whatever the setting.
        r = await p.client.call_tool("reject", {})
        assert TOKEN not in wire(r), wire(r)
