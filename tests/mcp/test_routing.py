"""Routing by a strategy (contract 0.2): with the bundled `failover`
plugin on a server that has `failover = ["backup"]`, the plugin's routes
are honoured. The primary hangs (SIGSTOP: it stays `ready`, its calls time
out); the call that finds it hung is retried on the backup (the plugin's
`retry-on`); the plugin ejects the primary, and the calls after it go to
the backup at their first attempt (its grants route them), for as long as
the ejection lasts, even once the primary answers again; then the probe
finds it back, and traffic returns.

The host-side failover is set to eject for 1 ms (`eject-for`), so what
keeps calls off the primary here is the plugin's routing: without it each
call would first time out on the primary. Both servers are the test's
write server, each logging the notes it wrote to its own file."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from conftest import CALL_META, mender_toml, proxy, stopped, text, write_server

pytestmark = pytest.mark.anyio

EJECT_FOR = 4.0

PIPELINE = f"""
[plugins.failover]
bundled = "failover"
config = {{ eject-after = 1, eject-for = "{EJECT_FOR}s", lease = "100ms" }}

[services.primary]
strategies = ["failover"]
"""


def notes(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines() if not line.startswith("cancelled")]


async def test_a_strategy_routes_calls_off_a_hung_primary_and_back(workdir: Path) -> None:
    primary_log, backup_log = workdir / "primary.log", workdir / "backup.log"
    primary = write_server(
        primary_log,
        **{
            "failover": ["backup"],
            "eject-for": "1ms",
            # A write the test vouches for: safe to try on the backup.
            "retry-tools": ["slow_write"],
            "call-timeout": "1s",
            # Long enough that the gateway never calls the stopped primary
            # hung: it stays `ready`, so host-side failover keeps choosing it.
            "ping-timeout": "60s",
        },
    )
    config = mender_toml(workdir, {"primary": primary, "backup": write_server(backup_log)}, PIPELINE)
    async with proxy(config) as p:
        ready = await p.wait_ready("primary")
        await p.wait_ready("backup")

        async def write(note: str) -> dict | None:
            r = await p.client.call_tool("slow_write", {"note": note})
            assert not r.is_error, text(r)
            return (r.meta or {}).get(CALL_META)

        assert await write("first") is None
        assert (notes(primary_log), notes(backup_log)) == (["first"], [])

        with anyio.fail_after(30):
            async with stopped(ready["pid"]):
                # The plugin routes the retry to the backup. The ejection
                # starts during this call: no earlier than now.
                ejected_at = time.monotonic()
                meta = await write("found-hung")
                assert meta is not None and meta["served_by"] == "upstream", meta
                attempts = meta["attempts"]
                assert [(a["kind"], a["upstream"]) for a in attempts] == [("timeout", "primary")], attempts
                assert notes(backup_log) == ["found-hung"]
                # The primary is ejected: calls go to the backup at once.
                for i in range(3):
                    assert await write(f"ejected-{i}") is None, "served at the first attempt"
                assert notes(backup_log) == ["found-hung"] + [f"ejected-{i}" for i in range(3)]

            # The primary answers again, but stays ejected until the
            # ejection ends; then the probe takes it back.
            n = 0
            while True:
                note = f"after-{n}"
                assert await write(note) is None, "no call pays for the primary's hang any more"
                if note in notes(primary_log):
                    returned = time.monotonic() - ejected_at
                    break
                assert note in notes(backup_log)
                n += 1
                await anyio.sleep(0.1)
        assert returned >= EJECT_FOR, f"the primary took traffic {returned:.1f}s after its ejection"
        for i in range(3):
            assert await write(f"back-{i}") is None
            assert notes(primary_log)[-1] == f"back-{i}"
        assert "upstream `primary` ejected" in p.stderr()
