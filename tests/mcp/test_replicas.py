"""Replicas: with `replicas = 3` the gateway runs three processes of one
server and spreads its calls over them, round-robin. A replica that dies
(SIGKILL) or hangs (SIGSTOP) costs at most the one attempt that found it
so: that call's retry goes to another replica, the calls after it are
served at their first attempt by the others, and once the replica is
restarted and ready it serves again. The server is the test's counter
server, whose `count` answers with its own pid, so the test sees which
replica served each call; `mender status` lists the replicas."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from conftest import CALL_META, HERE, VENV_BIN, everything, mender_bin, mender_status, mender_toml, proxy, stopped, text

pytestmark = pytest.mark.anyio

# Connection failures and timeouts retried at once, a few times: the
# retry is what another replica takes.
PIPELINE = """
[plugins.backoff]
bundled = "exponential-backoff"
config = { base = "10ms", factor = 2.0, max-delay = "100ms", max-attempts = 4, jitter = "none" }

[services.pids]
strategies = ["backoff"]
guardrails = { max-attempts = 4 }
"""


def pids_server(workdir: Path, **extra: object) -> dict[str, object]:
    return {
        "command": str(VENV_BIN / "python"),
        "args": [str(HERE / "counter_server.py")],
        "env": {"COUNTER_PIDS": str(workdir / "pids")},
        "replicas": 3,
        # `count` only reads its own counter: safe to send to another replica.
        "retry-tools": ["count", "steps"],
        "restart-backoff": {"base": "250ms", "max": "500ms"},
        **extra,
    }


def replicas(p) -> list[dict]:
    return p.upstream("pids")["replicas"]


async def all_ready(p, timeout: float = 20.0) -> list[dict]:
    return await p.wait_for(
        "every replica ready",
        lambda: (rs := replicas(p)) and all(r["state"] == "ready" and r["pid"] for r in rs) and rs,
        timeout,
    )


async def count(p) -> tuple[int, dict | None]:
    """One call: the pid that answered, and the gateway's account of its
    failed attempts (None when the first attempt served it)."""
    r = await p.client.call_tool("count", {})
    assert not r.is_error, text(r)
    return int(text(r).split()[0]), (r.meta or {}).get(CALL_META)


async def test_calls_are_spread_over_replicas_and_a_killed_one_costs_one_attempt(workdir: Path) -> None:
    config = mender_toml(workdir, {"pids": pids_server(workdir)}, PIPELINE)
    async with proxy(config) as p:
        ready = await all_ready(p)
        assert [r["replica"] for r in ready] == [1, 2, 3]
        pids = [r["pid"] for r in ready]
        assert len(set(pids)) == 3, ready
        status = p.upstream("pids")
        assert status["state"] == "ready" and status["pid"] is None, status

        # Round-robin: six calls, each replica twice, none retried.
        served = []
        for _ in range(6):
            pid, meta = await count(p)
            assert meta is None, meta
            served.append(pid)
        assert sorted(served) == sorted(pids * 2), (served, pids)
        assert [r["calls"] for r in replicas(p)] == [2, 2, 2]

        # A replica dies in the middle of a call: that call's retry is
        # served by another replica, within one failed attempt.
        async with anyio.create_task_group() as tg:
            answer: dict = {}

            async def slow() -> None:
                r = await p.client.call_tool("steps", {"n": 6})
                answer["r"] = r

            tg.start_soon(slow)
            busy = await p.wait_for(
                "the slow call on a replica",
                lambda: [r for r in replicas(p) if r["calls"] == 3],
            )
            victim = busy[0]
            os.kill(victim["pid"], signal.SIGKILL)
        r = answer["r"]
        assert not r.is_error, text(r)
        # The server serves while one replica does.
        assert p.upstream("pids")["state"] == "ready"
        assert int(text(r).split()[0]) in set(pids) - {victim["pid"]}
        attempts = (r.meta or {})[CALL_META]["attempts"]
        assert [(a["kind"], a["step"]) for a in attempts] == [("connect", "retry")], attempts

        # The calls after it: none lost, none on the dead replica, each
        # served with at most one failed attempt.
        for _ in range(6):
            pid, meta = await count(p)
            assert pid != victim["pid"]
            assert meta is None or len(meta["attempts"]) <= 1, meta

        # Restarted, it serves again: a new pid in its place, in the rotation.
        back = await p.wait_for(
            "the killed replica restarted",
            lambda: (r := replicas(p)[victim["replica"] - 1])["state"] == "ready"
            and r["pid"] not in (None, victim["pid"])
            and r,
        )
        assert back["restarts"] >= 1
        status = p.upstream("pids")
        assert status["state"] == "ready" and status["restarts"] == back["restarts"], status
        assert status["last_error"].startswith(f"replica {victim['replica']}: "), status
        served = [(await count(p))[0] for _ in range(3)]
        assert back["pid"] in served, (served, back)
        # The other two never restarted.
        others = [r for r in replicas(p) if r["replica"] != victim["replica"]]
        assert [r["pid"] for r in others] == [x for x in pids if x != victim["pid"]]
        assert all(r["restarts"] == 0 for r in others), others

        # The table lists them under their server.
        out = await anyio.run_process([mender_bin(), "status", "--config", str(config)])
        table = out.stdout.decode()
        print(table)
        assert "  replica 1" in table and "  replica 3" in table, table


async def test_a_hung_replica_costs_one_timeout_then_is_passed_over(workdir: Path) -> None:
    spec = pids_server(workdir, **{"call-timeout": "2s", "ping-timeout": "1s"})
    config = mender_toml(workdir, {"pids": spec}, PIPELINE)
    async with proxy(config) as p:
        pids = [r["pid"] for r in await all_ready(p)]
        hung = pids[1]
        with anyio.fail_after(30):
            async with stopped(hung):
                timeouts = 0
                for _ in range(9):
                    pid, meta = await count(p)
                    assert pid != hung
                    if meta is not None:
                        assert [(a["kind"], a["step"]) for a in meta["attempts"]] == [("timeout", "retry")], meta
                        timeouts += 1
                assert timeouts == 1, "one call found the replica hung; the rest went to the others"
                # Its ping unanswered, it is hung: killed and restarted.
                back = await p.wait_for(
                    "the hung replica restarted",
                    lambda: (r := replicas(p)[1])["state"] == "ready" and r["pid"] not in (None, hung) and r,
                )
            assert back["restarts"] >= 1
            served = set()
            for _ in range(6):
                pid, meta = await count(p)
                assert meta is None, meta
                served.add(pid)
            assert back["pid"] in served, (served, back)
        assert "failover: an attempt failed" in p.stderr()


async def test_each_call_gets_its_own_replicas_progress(workdir: Path) -> None:
    # Replicas number their requests (and progress tokens) alike: they
    # run the same command through the same start-up requests. The gateway
    # routes progress by process, so each call sees exactly its own steps,
    # from the replica that serves it.
    config = mender_toml(workdir, {"pids": pids_server(workdir)}, PIPELINE)
    async with proxy(config) as p:
        await all_ready(p)
        seen: dict[int, list[float]] = {8: [], 3: []}
        served: dict[int, int] = {}

        async def run(n: int) -> None:
            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                seen[n].append(value)

            r = await p.client.call_tool("steps", {"n": n}, progress_callback=on_progress)
            assert not r.is_error, text(r)
            served[n] = int(text(r).split()[0])

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, 8)
            tg.start_soon(run, 3)
        assert served[8] != served[3], "two replicas served them"
        assert seen == {8: [1, 2, 3, 4, 5, 6, 7, 8], 3: [1, 2, 3]}, seen


# A replica refuses to start while the file $DOWN exists.
GUARDED = 'if [ -e "$DOWN" ]; then echo "down: $DOWN exists" >&2; exit 1; fi; exec "$PY" "$SERVER"'


async def test_backups_serve_only_when_no_replica_can(workdir: Path) -> None:
    down = workdir / "down"
    spec = pids_server(workdir, replicas=2, failover=["backup"])
    spec.update(
        command="sh",
        args=["-c", GUARDED],
        env={"DOWN": str(down), "PY": str(VENV_BIN / "python"), "SERVER": str(HERE / "counter_server.py")},
    )
    backup = {"command": str(VENV_BIN / "python"), "args": [str(HERE / "counter_server.py")]}
    config = mender_toml(workdir, {"pids": spec, "backup": backup}, PIPELINE)
    async with proxy(config) as p:
        pids = [r["pid"] for r in await all_ready(p)]
        backup_pid = (await p.wait_ready("backup"))["pid"]
        assert {(await count(p))[0] for _ in range(4)} == set(pids), "the replicas, not the backup"

        # One replica down: the other serves; the backup still gets nothing.
        down.touch()
        os.kill(pids[0], signal.SIGKILL)
        await p.wait_for("replica 1 down", lambda: replicas(p)[0]["state"] != "ready")
        for _ in range(3):
            pid, meta = await count(p)
            assert (pid, meta) == (pids[1], None)

        # Both down: the backup serves, at the first attempt.
        os.kill(pids[1], signal.SIGKILL)
        await p.wait_for("both replicas down", lambda: all(r["state"] != "ready" for r in replicas(p)))
        for _ in range(3):
            pid, meta = await count(p)
            assert (pid, meta) == (backup_pid, None)

        down.unlink()
        back = [r["pid"] for r in await all_ready(p)]
        assert {(await count(p))[0] for _ in range(4)} == set(back), "traffic back on the replicas"


def test_a_task_lives_in_the_replica_that_created_it(workdir: Path) -> None:
    # test_tasks.py's session through three replicas of server-everything:
    # its two tasks are created on two replicas (the rotation), and every
    # request about each (get, result with its elicitation, cancel) must
    # reach the one holding it, or the server answers "unknown task".
    from test_tasks import Session, direct_run, run

    want = direct_run(workdir)
    config = mender_toml(workdir, {"everything": everything(replicas=3)})
    proxied = Session([mender_bin(), "mcp-proxy", "--config", str(config)], workdir, "proxied")
    try:
        got = run(proxied)
        served = [r["calls"] for r in mender_status(config)["upstreams"][0]["replicas"]]
    finally:
        proxied.close()
    assert got == want, f"through replicas: {got}\ndirectly: {want}"
    assert served == [1, 1, 0], "each task created on its own replica"
    log = (workdir / "proxied.stderr").read_text()
    assert "replica=3" in log, "three replicas ran"
