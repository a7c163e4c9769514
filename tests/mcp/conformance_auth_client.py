"""The client command the MCP conformance suite runs for its auth scenarios
(`conformance client --command "python3 THIS" --suite auth`): `mender call`
against the URL the suite appends, signing in headless (the suite's
authorization server approves at once), then calling the scenarios' tool.

The suite hands a scenario's pre-registered client in
MCP_CONFORMANCE_CONTEXT (JSON); they become `mender call`'s --oauth-…
options, the secret through an environment variable so it is not on a
command line. MENDER_BIN names the binary."""

from __future__ import annotations

import json
import os
import sys

url = sys.argv[-1]
context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
command = [os.environ["MENDER_BIN"], "call", "--oauth", "--oauth-headless"]
if context.get("client_id"):
    command += ["--oauth-client-id", context["client_id"]]
if context.get("client_secret"):
    os.environ["CONFORMANCE_CLIENT_SECRET"] = context["client_secret"]
    command += ["--oauth-client-secret", "${CONFORMANCE_CLIENT_SECRET}"]
scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
if scenario.startswith("auth/client-credentials"):
    command += ["--oauth-grant", "client_credentials"]
elif scenario != "auth/pre-registration":
    # What the suite's reference client does: list, then call its tool.
    command += ["--tool", "test-tool"]
os.execv(command[0], command + [url])
