"""The official MCP conformance suite (npm @modelcontextprotocol/conformance),
server mode, every scenario, against mender's HTTP front: `mender mcp-proxy
--listen` in front of the suite's own reference server (reached as a remote
Streamable HTTP upstream, `url = …`) gives the same verdict, check for
check, as the reference server direct, and the `dns-rebinding-protection`
scenario passes on mender's front itself.

The reference server is tests/mcp/conformance/everything-server.mts (the
suite's, see its header); Node 22 runs it from the npm tools directory so
that it finds the SDK installed there. The per-scenario table is written to
target/conformance-server.md (docs/conformance.md carries a copy)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import NODE22, ROOT, TOOLS, free_port, listening, mender_bin, mender_toml, reference_server

NPM = TOOLS / "npm"
CONFORMANCE = NPM / "node_modules/@modelcontextprotocol/conformance/dist/index.js"


def verdicts(url: str, out_dir: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Every server scenario's checks: scenario -> check id -> (status, error)."""
    run = subprocess.run(
        [str(NODE22), str(CONFORMANCE), "server", "--url", url, "-o", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for checks in sorted(out_dir.glob("server-*/checks.json")):
        # server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]
        found[scenario] = {
            c["id"]: (c["status"], (c.get("errorMessage") or "")[:200]) for c in json.loads(checks.read_text())
        }
    assert found, f"no results ({run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    return found


def table(direct: dict, via: dict) -> str:
    rows = ["| scenario | checks | direct | through mender |", "|---|---|---|---|"]
    for scenario in sorted(set(direct) | set(via)):
        d, v = direct.get(scenario, {}), via.get(scenario, {})

        def passed(checks: dict) -> str:
            ok = sum(1 for status, _ in checks.values() if status == "SUCCESS")
            return f"{ok}/{len(checks)} pass" if checks else "not run"

        rows.append(f"| `{scenario}` | {len(set(d) | set(v))} | {passed(d)} | {passed(v)} |")
    return "\n".join(rows) + "\n"


def test_every_server_scenario_gives_the_same_verdict_through_mender(workdir: Path) -> None:
    front_port = free_port()
    with reference_server(workdir / "reference.log") as (ref_url, _):
        direct = verdicts(ref_url, workdir / "direct")
        config = mender_toml(workdir, {"reference": {"url": ref_url}})
        front = [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{front_port}"]
        with listening(front, front_port, workdir / "mender.log") as (front_url, _):
            via = verdicts(front_url, workdir / "via-mender")
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target" / "conformance-server.md").write_text(table(direct, via))

    # The suite ran what it runs today (a version with fewer scenarios
    # would make this comparison weaker without saying so).
    assert len(direct) >= 30, sorted(direct)
    differ = {
        (scenario, check): (status, via.get(scenario, {}).get(check))
        for scenario, checks in direct.items()
        for check, status in checks.items()
        if status[0] == "SUCCESS" and via.get(scenario, {}).get(check, ("",))[0] != "SUCCESS"
    }
    log = (workdir / "mender.log").read_text(errors="replace")
    assert not differ, f"checks that pass direct but not through mender: {differ}\n{log[-4000:]}"
    # mender's own front protects against DNS rebinding.
    rebinding = via["dns-rebinding-protection"]
    assert rebinding and all(s == "SUCCESS" for s, _ in rebinding.values()), rebinding
