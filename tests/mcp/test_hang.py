"""An upstream that hangs (SIGSTOP): calls time out, a circuit breaker opens
and then fails calls fast, and the service recovers when the server does.
With restart-on-hang the proxy kills the hung server and starts a new one."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from conftest import call_meta, everything, mender_toml, proxy, stopped, text, timed

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 1.0
OPEN_FOR = 3.0

# One attempt per call, so each call is one breaker observation; the breaker
# opens after two timeouts in a row.
BREAKER = f"""
[plugins.breaker]
bundled = "circuit-breaker"
config = {{ failure-threshold = 2, open-for = "{OPEN_FOR}s", half-open-probes = 1 }}

[services.everything]
strategies = ["breaker"]
guardrails = {{ max-attempts = 1 }}
"""

# No strategy: a failed call fails, nothing else happens in the pipeline.
PLAIN = """
[services.everything]
guardrails = { max-attempts = 1 }
"""


def hanging(restart: bool) -> dict:
    return everything(
        **{
            "call-timeout": f"{CALL_TIMEOUT}s",
            "ping-timeout": "500ms",
            "restart-on-hang": restart,
            "restart-backoff": {"base": "250ms", "max": "2s"},
        }
    )


async def echo(p, message: str = "hi"):
    return await p.client.call_tool("echo", {"message": message})


async def test_timeouts_open_the_circuit_and_it_closes_after_recovery(workdir: Path) -> None:
    async with proxy(mender_toml(workdir, {"everything": hanging(restart=False)}, BREAKER)) as p:
        ready = await p.wait_ready("everything")
        # No call has been judged yet: no breaker state, or a closed one.
        assert ready["circuit"] in (None, "closed"), ready
        with anyio.fail_after(25):
            async with stopped(ready["pid"]):
                for n in range(2):
                    r = await echo(p)
                    assert r.is_error, text(r)
                    assert text(r).startswith("mender:"), text(r)
                    attempts = call_meta(r)["attempts"]
                    assert [a["kind"] for a in attempts] == ["timeout"], (n, attempts)
                opened_at = time.monotonic()

                # Open: refused before reaching the upstream, well under the
                # call timeout.
                r, took = await timed(lambda: echo(p))
                assert r.is_error, text(r)
                assert text(r).startswith("mender:"), text(r)
                assert [a["kind"] for a in call_meta(r)["attempts"]] == ["rejected"], call_meta(r)
                assert took < CALL_TIMEOUT / 2, f"an open circuit took {took:.2f}s to refuse"
                status = p.upstream("everything")
                assert status["circuit"] == "open", status
                # Not restarted: restart-on-hang is off.
                assert status["pid"] == ready["pid"] and status["restarts"] == 0, status
                assert status["failures"] >= 3, status

            # Resumed; once open-for has passed, the probe goes through and
            # closes the circuit.
            await anyio.sleep(OPEN_FOR + 0.5 - (time.monotonic() - opened_at))
            r = await echo(p, "back")
            assert not r.is_error, text(r)
            assert text(r) == "Echo: back"
            # The breaker learns the probe succeeded and closes; mender
            # status shows that from the next call it judges on.
            assert p.upstream("everything")["circuit"] in ("half-open", "closed")
            r = await echo(p, "closed")
            assert not r.is_error, text(r)
            status = p.upstream("everything")
            assert status["circuit"] == "closed", status
            assert status["pid"] == ready["pid"], status


# The same limit from the other side: the service's attempt-timeout (1 s)
# binds, not the server's call-timeout (60 s by default).
GUARDRAIL_TIMEOUT = f"""
[services.everything]
guardrails = {{ max-attempts = 1, attempt-timeout = "{CALL_TIMEOUT}s" }}
"""


@pytest.mark.parametrize("limit", ["call-timeout", "attempt-timeout"])
async def test_a_hung_server_is_restarted(workdir: Path, limit: str) -> None:
    spec = hanging(restart=True)
    pipeline = PLAIN
    if limit == "attempt-timeout":
        del spec["call-timeout"]
        pipeline = GUARDRAIL_TIMEOUT
    async with proxy(mender_toml(workdir, {"everything": spec}, pipeline)) as p:
        before = await p.wait_ready("everything")
        with anyio.fail_after(25):
            async with stopped(before["pid"]):
                r = await echo(p)
                assert r.is_error, text(r)
                attempts = call_meta(r)["attempts"]
                assert [a["kind"] for a in attempts] == ["timeout"], attempts
                # The ping timed out too: hung, so killed and started again.
                after = await p.wait_for(
                    "a new everything server",
                    lambda: (u := p.upstream("everything"))["state"] == "ready" and u["pid"] != before["pid"] and u,
                )
            assert after["restarts"] >= 1, after
            r = await echo(p, "again")
            assert not r.is_error, text(r)
            assert text(r) == "Echo: again"
