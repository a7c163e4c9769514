"""mcp-server-fetch in front of a scripted HTTP server: the proxy classifies
the fetch tool's isError results by the HTTP status in their text, and the
backoff strategy decides per kind. The fault server counts the requests
that really reached it, so retries are checked at the far end.

The fetch tool is annotated readOnly + idempotent, so the proxy may retry
it without a retry-tools entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import call_meta, fetch_server, mender_toml, proxy, text
from fault_server import FaultServer, Reply

pytestmark = pytest.mark.anyio

MAX_ATTEMPTS = 3

# Every kind's action is spelled out, so what is retried does not depend
# on the plugin's defaults. No jitter: the same delays every run.
PIPELINE = f"""
[plugins.backoff]
bundled = "exponential-backoff"

[plugins.backoff.config]
base = "100ms"
factor = 2.0
max-delay = "500ms"
max-attempts = {MAX_ATTEMPTS}
jitter = "none"

[plugins.backoff.config.kinds]
rate-limited = {{ action = "retry" }}
resource = {{ action = "retry" }}
auth = {{ action = "fail" }}
timeout = {{ action = "fail" }}

[services.fetch]
strategies = ["backoff"]
guardrails = {{ max-attempts = 5 }}
"""

CALL_TIMEOUT = "1s"


@pytest.fixture
def web() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def config(workdir: Path) -> Path:
    return mender_toml(workdir, {"fetch": fetch_server(**{"call-timeout": CALL_TIMEOUT})}, PIPELINE)


async def fetch(p, url: str):
    return await p.client.call_tool("fetch", {"url": url, "raw": True})


async def test_rate_limited_then_ok_is_retried(workdir: Path, web: FaultServer) -> None:
    web.script("/limited", Reply(429, "slow down", headers={"Retry-After": "1"}), Reply(200, "fine"))
    async with proxy(config(workdir)) as p:
        r = await fetch(p, web.url("/limited"))
    assert not r.is_error, text(r)
    assert "fine" in text(r)
    meta = call_meta(r)
    assert meta["service"] == "fetch" and meta["served_by"] == "upstream", meta
    [attempt] = meta["attempts"]
    assert attempt["kind"] == "rate-limited" and attempt["status"] == 429, attempt
    assert attempt["step"] == "retry" and attempt["attempt"] == 1, attempt
    assert web.hits("/limited") == 2


async def test_server_errors_are_retried_up_to_max_attempts(workdir: Path, web: FaultServer) -> None:
    web.script("/broken", Reply(500, "boom"))
    async with proxy(config(workdir)) as p:
        r = await fetch(p, web.url("/broken"))
    # The pipeline gave up after an upstream result: the client gets that
    # result (the fetcher's own words), with the attempts added.
    assert r.is_error
    assert "status code 500" in text(r) and not text(r).startswith("mender:"), text(r)
    attempts = call_meta(r)["attempts"]
    assert [a["kind"] for a in attempts] == ["resource"] * MAX_ATTEMPTS, attempts
    assert [a["step"] for a in attempts] == ["retry"] * (MAX_ATTEMPTS - 1) + ["fail"], attempts
    assert [a["attempt"] for a in attempts] == list(range(1, MAX_ATTEMPTS + 1)), attempts
    assert web.hits("/broken") == len(attempts)


async def test_unauthorized_is_not_retried(workdir: Path, web: FaultServer) -> None:
    web.script("/private", Reply(401, "who are you"))
    async with proxy(config(workdir)) as p:
        r = await fetch(p, web.url("/private"))
    assert r.is_error
    assert "status code 401" in text(r), text(r)
    [attempt] = call_meta(r)["attempts"]
    assert attempt["kind"] == "auth" and attempt["status"] == 401, attempt
    assert attempt["step"] == "fail", attempt
    assert web.hits("/private") == 1


async def test_a_slow_tool_times_out_without_a_restart(workdir: Path, web: FaultServer) -> None:
    web.script("/slow", Reply(200, "too late", delay=5))
    web.script("/quick", Reply(200, "quick"))
    async with proxy(config(workdir)) as p:
        before = await p.wait_ready("fetch")
        r = await fetch(p, web.url("/slow"))
        assert r.is_error, text(r)
        assert text(r).startswith("mender:"), text(r)
        [attempt] = call_meta(r)["attempts"]
        assert attempt["kind"] == "timeout" and attempt["step"] == "fail", attempt
        assert web.hits("/slow") == 1

        # The server answered the ping: a slow tool, not a hung server. It
        # keeps its process and serves the next call.
        after = p.upstream("fetch")
        assert after["state"] == "ready", after
        assert after["pid"] == before["pid"] and after["restarts"] == 0, (before, after)
        r = await fetch(p, web.url("/quick"))
        assert not r.is_error, text(r)
        assert "quick" in text(r)
        assert p.upstream("fetch")["pid"] == before["pid"]
