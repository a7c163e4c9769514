"""A stdio MCP server written against the wire protocol, for cases no
third-party server provokes on demand: it echoes the credential the config
gave it (in env and args) in a JSON-RPC error, an isError result, a plain
result and a resources/read error, and it has a tool that reports
progress and fails its first run with a retryable error.

Tools:
  echo_secret    a result text holding $API_TOKEN and the command line
  reject         a JSON-RPC error whose message holds $API_TOKEN
  fail_secret    an isError result holding $API_TOKEN
  flaky_progress readOnly; sends progress 1..4 of 4 and, on its first
                 run per $RUNS_FILE, stops after 2 with "status code 503"
Resources: resources/read of anything fails with $API_TOKEN in the message.
With $STDERR_ON_CALL set, each tools/call first writes a line to stderr
naming the tool, with an error code and $API_TOKEN in it (for `mender logs`).
With $TRACE_FILE set, each tools/call appends the tool's name and the
`_meta.traceparent` it came with to that file (for tests/otlp.rs).

Run as `python raw_server.py [args...]`; one JSON-RPC message per line."""

import json
import os
import sys
import time

TOKEN = os.environ.get("API_TOKEN", "")

TOOLS = [
    {"name": "echo_secret", "inputSchema": {"type": "object"}},
    {"name": "reject", "inputSchema": {"type": "object"}},
    {"name": "fail_secret", "inputSchema": {"type": "object"}},
    {
        "name": "flaky_progress",
        "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": True},
    },
]


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(text: str, is_error: bool = False) -> dict:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def flaky_progress(token) -> dict:
    runs_file = os.environ["RUNS_FILE"]
    with open(runs_file, "a") as f:
        f.write("run\n")
    with open(runs_file) as f:
        first = len(f.read().splitlines()) == 1
    for step in range(1, 5):
        if token is not None:
            send({
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": token, "progress": step, "total": 4, "message": f"step {step}"},
            })
        time.sleep(0.05)
        if first and step == 2:
            return text_result("upstream API: status code 503, try again", is_error=True)
    return text_result("done after 4 steps")


def call_tool(params: dict) -> tuple[dict | None, dict | None]:
    name = params.get("name")
    if os.environ.get("STDERR_ON_CALL"):
        print(f"raw_server: {name}: connect ECONNREFUSED 127.0.0.1:9 (key {TOKEN})",
              file=sys.stderr, flush=True)
    meta = params.get("_meta") or {}
    if os.environ.get("TRACE_FILE"):
        with open(os.environ["TRACE_FILE"], "a") as f:
            f.write(json.dumps({"tool": name, "traceparent": meta.get("traceparent")}) + "\n")
    token = meta.get("progressToken")
    if name == "echo_secret":
        return text_result(f"token {TOKEN}; argv {' '.join(sys.argv[1:])}"), None
    if name == "reject":
        return None, {"code": -32603, "message": f"upstream said: token {TOKEN} rejected"}
    if name == "fail_secret":
        return text_result(f"could not authenticate with {TOKEN}", is_error=True), None
    if name == "flaky_progress":
        return flaky_progress(token), None
    return text_result(f"Unknown tool: {name}", is_error=True), None


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        method, params, result, error = message["method"], message.get("params") or {}, None, None
        if method == "initialize":
            result = {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}, "resources": {}},
                "serverInfo": {"name": "mender-test-raw", "version": "0"},
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            result, error = call_tool(params)
        elif method == "resources/list":
            result = {"resources": []}
        elif method == "resources/templates/list":
            result = {"resourceTemplates": []}
        elif method == "resources/read":
            error = {"code": -32002, "message": f"cannot read {params.get('uri')} with token {TOKEN}"}
        else:
            error = {"code": -32601, "message": f"Method not found: {method}"}
        reply = {"jsonrpc": "2.0", "id": message["id"]}
        reply.update({"error": error} if error else {"result": result})
        send(reply)


if __name__ == "__main__":
    main()
