"""The official MCP conformance suite's client auth scenarios
(npm @modelcontextprotocol/conformance, `client --suite auth`, and the
client-credentials extension) against `mender call`, through
conformance_auth_client.py. The scenarios mender passes must keep
passing; docs/conformance-auth.md says why the others do not."""

from __future__ import annotations

import json
import os
import re
import sys
import subprocess
from pathlib import Path

from conftest import mender_bin
from test_conformance import CONFORMANCE, NODE22

CLIENT = Path(__file__).with_name("conformance_auth_client.py")

# Every check of these scenarios succeeds (docs/conformance-auth.md has
# the table, and why the others do not).
PASSING = {
    # --suite auth
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    # --suite draft
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    # one scenario each from the extensions and back-compat suites
    "auth/client-credentials-basic",
    "auth/2025-03-26-oauth-endpoint-fallback",
}


def verdicts(out_dir: Path, *selection: str) -> dict[str, list[dict[str, str]]]:
    """Runs the suite (`--suite S` or `--scenario S`); scenario -> its checks."""
    env = {**os.environ, "MENDER_BIN": mender_bin()}
    run = subprocess.run(
        [str(NODE22), str(CONFORMANCE), "client", "--command", f"{sys.executable} {CLIENT}", *selection, "-o", str(out_dir), "--timeout", "30000"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    found: dict[str, list[dict[str, str]]] = {}
    # One directory per scenario: OUT/auth/NAME-TIMESTAMP/checks.json.
    for checks in out_dir.rglob("checks.json"):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", checks.parent.relative_to(out_dir).as_posix())
        found[scenario] = json.loads(checks.read_text())
    assert found, f"no results ({run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    return found


def passed(checks: list[dict[str, str]]) -> bool:
    return bool(checks) and all(c["status"] in ("SUCCESS", "INFO") for c in checks)


def test_the_auth_scenarios_mender_passes_keep_passing(workdir: Path) -> None:
    found = verdicts(workdir / "auth", "--suite", "auth")
    found |= verdicts(workdir / "draft", "--suite", "draft")
    found |= verdicts(workdir / "cc", "--scenario", "auth/client-credentials-basic")
    found |= verdicts(workdir / "fallback", "--scenario", "auth/2025-03-26-oauth-endpoint-fallback")
    failing = {
        s: [f"{c['id']}: {c['status']} {c.get('errorMessage') or c.get('description', '')}" for c in found.get(s, []) if c["status"] not in ("SUCCESS", "INFO")] or "no result"
        for s in PASSING
        if not passed(found.get(s, []))
    }
    assert not failing, json.dumps(failing, indent=1)
