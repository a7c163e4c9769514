"""Bad bytes from the client get the JSON-RPC answer the spec asks for, and
the session goes on: malformed JSON and invalid UTF-8 get -32700 with
`"id": null`, JSON that is no request gets -32600 (with `"id": null` when
it has no usable id), a known method with unfitting params gets -32602
(not -32601), and a message over `max-message-bytes` gets an error with
its id instead of silence. No client library sends such bytes, so this
drives the proxy's stdin by hand, as test_bad_command does. And stdin and
stdout may be pipes, a socket pair or a file."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import mender_bin, mender_toml, time_server
from test_bad_command import INITIALIZE

LIMIT = 65536


class Wire:
    def __init__(self, config: Path) -> None:
        self.stderr = open(config.parent / "proxy.stderr", "w")
        self.proc = subprocess.Popen(
            [mender_bin(), "mcp-proxy", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=config.parent,
        )
        self.buffer = b""

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message).encode() + b"\n")

    def answer(self, timeout: float = 20.0) -> dict[str, Any]:
        """The next response (notifications skipped)."""
        assert self.proc.stdout
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                assert message.get("jsonrpc") == "2.0", message
                if "id" in message or "error" in message:
                    return message
            left = deadline - time.monotonic()
            assert left > 0, f"no answer within {timeout}s; got so far: {self.buffer!r}"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                assert chunk, "the proxy closed stdout"
                self.buffer += chunk

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def started(workdir: Path, limit: int | None = None) -> Wire:
    config = mender_toml(workdir, {"time": time_server()})
    if limit is not None:
        config.write_text(config.read_text().replace("[mcp]\n", f"[mcp]\nmax-message-bytes = {limit}\n", 1))
    wire = Wire(config)
    wire.send_json(INITIALIZE)
    assert "result" in wire.answer(), "initialize"
    wire.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return wire


def still_serving(wire: Wire, id: int) -> None:
    wire.send_json({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}}})
    a = wire.answer()
    assert a["id"] == id and "result" in a and not a["result"].get("isError"), a


def call(id: int, arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "get_current_time", "arguments": arguments}}


def test_malformed_input_gets_parse_and_invalid_request_errors(workdir: Path) -> None:
    wire = started(workdir)
    try:
        wire.send(b'{"jsonrpc": "2.0", "id": 2, "method": \n')
        a = wire.answer()
        assert "id" in a and a["id"] is None and a["error"]["code"] == -32700, a

        wire.send(b'{"jsonrpc": "2.0", "id": 3, "method": "ping", "x": "\xff\xfe"}\n')
        a = wire.answer()
        assert "id" in a and a["id"] is None and a["error"]["code"] == -32700, a

        wire.send(b'{"hello": "world"}\n')
        a = wire.answer()
        assert "id" in a and a["id"] is None and a["error"]["code"] == -32600, a
        still_serving(wire, 4)
    finally:
        wire.close()


def test_unfitting_tool_call_params_get_invalid_params(workdir: Path) -> None:
    wire = started(workdir)
    try:
        wire.send_json({"jsonrpc": "2.0", "id": 5, "method": "tools/call"})
        a = wire.answer()
        assert a["id"] == 5 and a["error"]["code"] == -32602, a

        wire.send_json(call(6, ["UTC"]))
        a = wire.answer()
        assert a["id"] == 6 and a["error"]["code"] == -32602, a
        still_serving(wire, 7)
    finally:
        wire.close()


def test_an_oversized_message_is_answered(workdir: Path) -> None:
    # Over the default limit (16 MiB): an error naming the setting, with the
    # request's id, not silence.
    wire = started(workdir)
    try:
        wire.send_json(call(8, {"timezone": "x" * (17 * 1024 * 1024)}))
        a = wire.answer(timeout=60)
        assert a["id"] == 8 and "error" in a, a
        assert "max-message-bytes" in a["error"]["message"], a
        still_serving(wire, 9)
    finally:
        wire.close()


def test_the_message_limit_is_configurable(workdir: Path) -> None:
    wire = started(workdir, limit=LIMIT)
    try:
        wire.send_json(call(10, {"timezone": "x" * (LIMIT * 2)}))
        a = wire.answer()
        assert a["id"] == 10 and "error" in a and str(LIMIT) in a["error"]["message"], a
        # Under it: served.
        still_serving(wire, 11)
    finally:
        wire.close()


def run_proxy(stdin: Any, stdout: Any, config: Path) -> subprocess.Popen[bytes]:
    """The proxy, started on the given stdin and stdout."""
    with open(config.parent / "proxy.stderr", "w") as err:
        proc = subprocess.Popen(
            [mender_bin(), "mcp-proxy", "--config", str(config)], stdin=stdin, stdout=stdout, stderr=err, cwd=config.parent
        )
    return proc


REQUESTS = [
    INITIALIZE,
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def test_stdin_and_stdout_may_be_a_socket_pair(workdir: Path) -> None:
    # What some clients (Node's child_process among them) start a server
    # with; the proxy reads and writes it on tokio's reactor.
    import socket

    config = mender_toml(workdir, {"time": time_server()})
    ours, theirs = socket.socketpair()
    proc = run_proxy(theirs, theirs, config)
    theirs.close()
    try:
        ours.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in REQUESTS))
        ours.settimeout(30)
        buffer = b""
        while b'"id":2' not in buffer.replace(b" ", b""):
            chunk = ours.recv(1 << 16)
            assert chunk, f"the proxy closed the socket: {buffer!r}"
            buffer += chunk
        answers = [json.loads(l) for l in buffer.splitlines() if l.strip()]
        tools = next(a for a in answers if a.get("id") == 2)["result"]["tools"]
        assert [t["name"] for t in tools] == ["get_current_time", "convert_time"], tools
    finally:
        ours.close()
        proc.wait(20)


def test_stdin_may_be_a_regular_file(workdir: Path) -> None:
    # Not watchable by epoll: tokio's own stdin is used instead, and the
    # proxy answers, then ends with the file.
    config = mender_toml(workdir, {"time": time_server()})
    requests = workdir / "requests.jsonl"
    requests.write_text("".join(json.dumps(m) + "\n" for m in REQUESTS))
    with open(requests) as stdin:
        proc = run_proxy(stdin, subprocess.PIPE, config)
        out, _ = proc.communicate(timeout=30)
    answers = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert any(a.get("id") == 2 and a["result"]["tools"] for a in answers), answers
