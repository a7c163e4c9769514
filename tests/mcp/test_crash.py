"""An upstream killed (SIGKILL) in the middle of a call: the proxy notices
the closed transport, restarts the server, and retries the call only when
the tool may be repeated. A write cut off by the crash is reported, not
repeated: it may have happened."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import call_meta, everything, mender_toml, proxy, text, write_server

pytestmark = pytest.mark.anyio

# Connection failures retried quickly (no jitter, so no luck involved),
# enough attempts to outlast a restart with the 250 ms restart backoff.
PIPELINE = """
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "200ms", factor = 2.0, max-delay = "1s", max-attempts = 6, jitter = "none" }

[services.everything]
strategies = ["backoff"]
guardrails = { max-attempts = 6 }

[services.writes]
strategies = ["backoff"]
guardrails = { max-attempts = 6 }
"""

RESTART = {"restart-backoff": {"base": "250ms", "max": "2s"}}


async def test_killed_mid_call_is_restarted_and_the_call_retried(workdir: Path) -> None:
    spec = everything(**{"retry-tools": ["trigger-long-running-operation"], **RESTART})
    async with proxy(mender_toml(workdir, {"everything": spec}, PIPELINE)) as p:
        before = await p.wait_ready("everything")
        progress: list[tuple[float, float | None]] = []
        first_progress = anyio.Event()

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total))
            first_progress.set()

        result: dict[str, Any] = {}

        async def call() -> None:
            result["r"] = await p.client.call_tool(
                "trigger-long-running-operation",
                {"duration": 3, "steps": 3},
                progress_callback=on_progress,
            )

        with anyio.fail_after(25):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                # Mid-call, for sure: the upstream has reported a step.
                await first_progress.wait()
                os.kill(before["pid"], signal.SIGKILL)

        r = result["r"]
        assert not r.is_error, text(r)
        assert "Long running operation completed" in text(r)
        meta = call_meta(r)
        assert meta["service"] == "everything"
        assert meta["served_by"] == "upstream"
        attempts = meta["attempts"]
        assert attempts and attempts[0]["kind"] == "connect", attempts
        # Every failed attempt was retried (the last, successful one is not
        # a failure); while the server restarts, retries may fail `connect` too.
        assert all(a["kind"] == "connect" and a["step"] == "retry" for a in attempts), attempts

        # Progress reached the client before the kill, and from the retried
        # attempt up to its last step. The last one may land just after the
        # result: the proxy forwards notifications and responses on separate
        # tasks, so their order is not kept (the README says so).
        assert progress[0][0] >= 1, progress
        with anyio.fail_after(2):
            while progress[-1] != (3, 3):
                await anyio.sleep(0.05)

        after = p.upstream("everything")
        assert after["state"] == "ready", after
        assert after["pid"] and after["pid"] != before["pid"], (before, after)
        assert after["restarts"] >= 1, after


async def test_a_write_killed_mid_call_is_not_retried(workdir: Path) -> None:
    log = workdir / "writes.log"
    async with proxy(mender_toml(workdir, {"writes": write_server(log, **RESTART)}, PIPELINE)) as p:
        before = await p.wait_ready("writes")
        result: dict[str, Any] = {}

        async def call() -> None:
            result["r"] = await p.client.call_tool("slow_write", {"note": "first", "seconds": 10})

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                # The upstream has started the write (logged it) when it dies.
                await p.wait_for("the write to start", lambda: log.exists() and log.read_text())
                os.kill(before["pid"], signal.SIGKILL)

        r = result["r"]
        assert r.is_error, text(r)
        assert text(r).startswith("mender:"), text(r)
        attempts = call_meta(r)["attempts"]
        assert len(attempts) == 1, attempts
        assert attempts[0]["kind"] == "connect" and attempts[0]["step"] == "fail", attempts
        assert len(log.read_text().splitlines()) == 1, "the write was repeated"

        # The proxy restarts the server anyway; the next call goes through.
        after = await p.wait_for(
            "a restarted writes server",
            lambda: (u := p.upstream("writes"))["state"] == "ready" and u["pid"] and u["pid"] != before["pid"] and u,
        )
        assert after["restarts"] >= 1, after
        r = await p.client.call_tool("slow_write", {"note": "second"})
        assert not r.is_error, text(r)
        assert text(r) == "wrote second"
        assert [line.split()[1] for line in log.read_text().splitlines()] == ["first", "second"]


async def test_status_never_shows_a_gone_server_as_ready(workdir: Path) -> None:
    # The server closes its stdout but lives on for 5 s: from the moment
    # its transport is gone, status says "restarting" (and counts the
    # restart), never "ready" with no process behind it.
    log = workdir / "writes.log"
    async with proxy(mender_toml(workdir, {"writes": write_server(log, **RESTART)})) as p:
        before = await p.wait_ready("writes")
        with anyio.fail_after(10):
            r = await p.client.call_tool("hang_up", {})
        assert r.is_error, text(r)
        seen = []
        for _ in range(10):
            u = p.upstream("writes")
            seen.append((u["state"], u["pid"], u["restarts"]))
            # Ready is right only for the old process (not noticed yet) or
            # for its replacement.
            old = u["pid"] == before["pid"]
            assert u["state"] != "ready" or old or (u["pid"] and u["restarts"] >= 1), seen
            await anyio.sleep(0.1)
        assert any(s == "restarting" and n >= 1 for s, _, n in seen), seen


async def test_no_call_in_flight_is_lost_to_a_crash(workdir: Path) -> None:
    # Twenty idempotent calls in flight when the server is killed: each one
    # gets exactly one answer, and every answer is the real one (served by
    # the restarted server), none an error.
    spec = everything(**{"retry-tools": ["trigger-long-running-operation"], **RESTART})
    async with proxy(mender_toml(workdir, {"everything": spec}, PIPELINE)) as p:
        before = await p.wait_ready("everything")
        results: dict[int, Any] = {}

        async def call(i: int) -> None:
            results[i] = await p.client.call_tool("trigger-long-running-operation", {"duration": 2, "steps": 2})

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(call, i)
                await anyio.sleep(0.5)
                os.kill(before["pid"], signal.SIGKILL)

        assert sorted(results) == list(range(20))
        failed = {i: text(r) for i, r in results.items() if r.is_error}
        assert not failed, failed
        assert all("Long running operation completed" in text(r) for r in results.values())
        assert all(call_meta(r)["attempts"][0]["kind"] == "connect" for r in results.values())
