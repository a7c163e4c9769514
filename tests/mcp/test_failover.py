"""Failover: with `failover = ["backup"]`, a primary that cannot serve (its
process killed and unable to start again) has its calls served by the
backup at the first attempt, and gets its traffic back once it is ready
again. Both are the test's write server, each logging the notes it wrote
to its own file, so the test sees which one served each call."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from conftest import CALL_META, VENV_BIN, HERE, mender_toml, proxy, text, write_server

pytestmark = pytest.mark.anyio

# The primary refuses to start while the file $DOWN exists.
PRIMARY = 'if [ -e "$DOWN" ]; then echo "down: $DOWN exists" >&2; exit 1; fi; exec "$PY" "$SERVER"'


def notes(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines() if not line.startswith("cancelled")]


async def test_a_dead_primary_is_served_by_its_backup_and_gets_its_traffic_back(workdir: Path) -> None:
    primary_log, backup_log, down = workdir / "primary.log", workdir / "backup.log", workdir / "down"
    primary = {
        "command": "sh",
        "args": ["-c", PRIMARY],
        "env": {"WRITE_LOG": str(primary_log), "DOWN": str(down), "PY": str(VENV_BIN / "python"),
                "SERVER": str(HERE / "write_server.py")},
        "failover": ["backup"],
        "restart-backoff": {"base": "250ms", "max": "500ms"},
    }
    config = mender_toml(workdir, {"primary": primary, "backup": write_server(backup_log)})
    async with proxy(config) as p:
        before = await p.wait_ready("primary")
        await p.wait_ready("backup")

        async def write(note: str) -> None:
            r = await p.client.call_tool("slow_write", {"note": note})
            assert not r.is_error, text(r)
            # Served at the first attempt: no failed attempt to account for.
            assert CALL_META not in (r.meta or {}), r.meta

        await write("first")
        assert (notes(primary_log), notes(backup_log)) == (["first"], [])

        down.touch()
        os.kill(before["pid"], signal.SIGKILL)
        await p.wait_for("the primary gone", lambda: p.upstream("primary")["state"] != "ready")
        for i in range(3):
            await write(f"while-down-{i}")
        assert notes(primary_log) == ["first"], "nothing reached the dead primary"
        assert notes(backup_log) == [f"while-down-{i}" for i in range(3)]

        down.unlink()
        await p.wait_ready("primary", timeout=20)
        await write("back")
        assert notes(primary_log) == ["first", "back"], "traffic returned to the primary"
        assert "failover: the server cannot serve now" in p.stderr()
