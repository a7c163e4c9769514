"""Tasks as the 2025-11-25 revision defines them pass through the gateway as
they would directly: the `tasks` capability, a tool's `execution`, a
task-augmented `tools/call`, `tasks/get` (with its `ttl` and
`pollInterval`), `tasks/list`, `tasks/result` (with the elicitation the
server asks for while the client waits on it), `tasks/cancel`, and status
notifications. Each run speaks raw JSON-RPC to server-everything once
directly and once through `mender mcp-proxy`, on stdio and through its
HTTP front (`--listen`), and compares.

Task ids, timestamps and the report's wording differ from run to run, so
what is compared is the shape: the keys of each answer, the statuses, and
the error codes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from conftest import await_port, everything, free_port, mender_bin, mender_toml

TOOL = "simulate-research-query"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {"form": {}}},
        "clientInfo": {"name": "mender-tests", "version": "0"},
    },
}


class Session:
    """One raw JSON-RPC client on a child's stdin/stdout; it answers the
    server's elicitation requests as a user choosing the first option would."""

    def __init__(self, command: list[str], workdir: Path, name: str) -> None:
        self.stderr = open(workdir / f"{name}.stderr", "w")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, cwd=workdir)
        self.buffer = b""
        self.next_id = 1
        self.notifications: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Sends a request; its response, whole (result or error)."""
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return self.response(rid, timeout)

    def response(self, rid: int, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if "method" in message and "id" in message:
                    self.answer_server(message)
                elif "method" in message:
                    self.notifications.append(message)
                elif message.get("id") == rid:
                    return message
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to request {rid} within {timeout}s"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                assert chunk, "the server closed stdout"
                self.buffer += chunk

    def answer_server(self, message: dict[str, Any]) -> None:
        self.asked.append(message)
        if message["method"] == "elicitation/create":
            schema = message["params"]["requestedSchema"]["properties"]["interpretation"]
            choice = schema["oneOf"][0]["const"]
            result: dict[str, Any] = {"action": "accept", "content": {"interpretation": choice}}
        else:
            result = {}
        self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()


class HttpSession:
    """The same client over Streamable HTTP: each request a POST whose
    answer is JSON or an SSE stream, on which the server's own requests
    (the elicitation) arrive and are answered with a POST of their own.
    Notifications the gateway sends on the standalone GET stream are not
    read (none is opened)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.next_id = 1
        self.notifications: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        r = self.http.post(self.url, json=message, headers=self.headers)
        assert r.status_code in (200, 202), (r.status_code, r.text)

    def request(self, method: str, params: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        rid = self.next_id
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        with self.http.stream("POST", self.url, json=message, headers=self.headers, timeout=timeout) as r:
            assert r.status_code == 200, (r.status_code, r.read())
            if "mcp-session-id" in r.headers:
                self.headers["mcp-session-id"] = r.headers["mcp-session-id"]
                self.headers["mcp-protocol-version"] = "2025-11-25"
            if r.headers.get("content-type", "").startswith("application/json"):
                return json.loads(r.read())
            for line in r.iter_lines():
                if not line.startswith("data:") or not line[5:].strip():
                    continue
                got = json.loads(line[5:])
                if "method" in got and "id" in got:
                    self.answer_server(got)
                elif "method" in got:
                    self.notifications.append(got)
                elif got.get("id") == rid:
                    return got
        raise AssertionError(f"the stream of request {rid} ({method}) ended without its answer")

    answer_server = Session.answer_server

    def close(self) -> None:
        self.http.close()


def run(session: Session | HttpSession) -> dict[str, Any]:
    """The scripted task session; what it saw, by step."""
    seen: dict[str, Any] = {}
    init = session.request("initialize", INITIALIZE["params"])
    seen["capabilities.tasks"] = init["result"]["capabilities"].get("tasks")
    session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = session.request("tools/list", {})["result"]["tools"]
    seen["execution"] = next(t for t in tools if t["name"] == TOOL).get("execution")

    # A task that asks the client to clarify, then completes.
    created = session.request(
        "tools/call", {"name": TOOL, "arguments": {"topic": "python", "ambiguous": True}, "task": {"ttl": 60000}}
    )
    task = created["result"]["task"]
    seen["created.keys"] = sorted(task)
    seen["created.status"] = task["status"]
    got = session.request("tasks/get", {"taskId": task["taskId"]})["result"]
    seen["get.keys"] = sorted(got)
    seen["get.ttl"] = got.get("ttl")
    listed = session.request("tasks/list", {})["result"]
    seen["listed"] = [t["taskId"] == task["taskId"] for t in listed["tasks"]]
    result = session.request("tasks/result", {"taskId": task["taskId"]}, timeout=60)["result"]
    seen["result.keys"] = sorted(result)
    seen["result.related"] = result.get("_meta", {}).get("io.modelcontextprotocol/related-task")
    seen["result.report"] = "Research Report" in result["content"][0]["text"]
    seen["result.clarified"] = "Clarification" in result["content"][0]["text"]
    seen["asked"] = [m["method"] for m in session.asked]
    done = session.request("tasks/get", {"taskId": task["taskId"]})["result"]
    seen["done.status"] = done["status"]

    # A task cancelled while it works.
    second = session.request("tools/call", {"name": TOOL, "arguments": {"topic": "rust"}, "task": {"ttl": 60000}})
    second_id = second["result"]["task"]["taskId"]
    cancelled = session.request("tasks/cancel", {"taskId": second_id})
    seen["cancel.status"] = cancelled.get("result", {}).get("status")
    seen["after-cancel.status"] = session.request("tasks/get", {"taskId": second_id})["result"]["status"]

    seen["unknown.error"] = "error" in session.request("tasks/get", {"taskId": "no-such-task"})
    seen["notified"] = sorted({n["method"] for n in session.notifications if "tasks" in n["method"]})
    for key in ("related",):
        if seen.get(f"result.{key}") is not None:
            seen[f"result.{key}"] = sorted(seen[f"result.{key}"])
    return seen


def direct_run(workdir: Path) -> dict[str, Any]:
    spec = everything()
    direct = Session([spec["command"], *spec["args"]], workdir, "direct")
    try:
        want = run(direct)
    finally:
        direct.close()
    assert want["capabilities.tasks"], "server-everything offers tasks"
    assert isinstance(want["get.ttl"], int), want
    assert want["result.report"] and want["result.clarified"], want
    return want


def test_tasks_pass_through_the_http_front_as_they_would_directly(workdir: Path) -> None:
    want = direct_run(workdir)
    config = mender_toml(workdir, {"everything": everything()})
    port = free_port()
    log = workdir / "front.stderr"
    with open(log, "w") as err:
        front = subprocess.Popen(
            [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    session = HttpSession(f"http://127.0.0.1:{port}/mcp")
    try:
        await_port(port, front, log)
        got = run(session)
    finally:
        session.close()
        front.kill()
        front.wait()
    # Status notifications go to the standalone stream, which this client
    # does not open; everything else must be as direct.
    want.pop("notified")
    got.pop("notified")
    assert got == want, f"through the HTTP front: {json.dumps(got, indent=1)}\ndirectly: {json.dumps(want, indent=1)}"


def test_tasks_pass_through_as_they_would_directly(workdir: Path) -> None:
    want = direct_run(workdir)
    spec = everything()
    config = mender_toml(workdir, {"everything": spec})
    proxied = Session([mender_bin(), "mcp-proxy", "--config", str(config)], workdir, "proxied")
    try:
        got = run(proxied)
    finally:
        proxied.close()
    assert got == want, f"through mender: {json.dumps(got, indent=1)}\ndirectly: {json.dumps(want, indent=1)}"
