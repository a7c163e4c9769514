"""A lean raw Streamable HTTP client for bench/gateway.py.

No SDK and no http.client: requests are written as bytes on keep-alive
sockets and answers parsed by hand (Content-Length or chunked bodies,
JSON or SSE), so the client's own cost stays small beside the gateway's.
Thirty-two calls in flight are 32 sockets on one thread behind a
`selectors` loop, not 32 threads: threads would spend the GIL's hand-offs
(and a core's worth of switching on a 2-core machine) on the client side.
All sockets share one MCP session (one client with 32 calls in flight,
like the stdio contenders' single pipe).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import time
from pathlib import Path

PROTOCOL = "2025-11-25"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_response(buf: bytearray) -> tuple[int, int, dict[str, str], bytes] | None:
    """(bytes consumed, status, headers, body) of the first whole response
    in `buf`, or None while it is incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    pos = head_end + 4
    if "content-length" in headers:
        end = pos + int(headers["content-length"])
        return (end, status, headers, bytes(buf[pos:end])) if len(buf) >= end else None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                # No trailers are sent by either gateway: the last CRLF.
                return (pos + 2, status, headers, bytes(body)) if len(buf) >= pos + 2 else None
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos : pos + size]
            pos += size + 2
    if status in (202, 204):
        return pos, status, headers, b""
    raise SystemExit(f"HTTP answer without a length: {lines[0]}")


def messages(headers: dict[str, str], body: bytes) -> list[dict]:
    """The JSON-RPC messages of a body: one JSON value, or SSE `data:` lines."""
    if headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for line in body.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data:
                    out.append(json.loads(data))
        return out
    return [json.loads(body)] if body else []


class ProcessStats:
    """What /proc says of a contender's own process (`self.proc`): the
    client's and the upstream's costs are not counted."""

    proc: subprocess.Popen

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


class HttpServer(ProcessStats):
    """One gateway process with an HTTP front, spoken to in raw HTTP/1.1."""

    def __init__(self, command: list[str], port: int, path: str, tool: str) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.port, self.path, self.tool = port, path, tool
        self.next_id = 0
        self.session: str | None = None
        self.protocol = PROTOCOL
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not listen on {port}")
                time.sleep(0.05)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.next_id += 1
        headers, answer = self.exchange(self.conn, self.buf, {
            "jsonrpc": "2.0", "id": self.next_id, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        })
        self.session = headers.get("mcp-session-id")
        self.protocol = answer["result"]["protocolVersion"]
        self.exchange(self.conn, self.buf, {"jsonrpc": "2.0", "method": "notifications/initialized"})

    def request_bytes(self, message: dict) -> bytes:
        body = json.dumps(message).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: {self.protocol}\r\n"
            + (f"Mcp-Session-Id: {self.session}\r\n" if self.session else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def call_bytes(self) -> tuple[int, bytes]:
        self.next_id += 1
        return self.next_id, self.request_bytes({
            "jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": self.tool, "arguments": {"message": "bench"}},
        })

    def exchange(self, conn: socket.socket, buf: bytearray, message: dict) -> tuple[dict, dict]:
        """Sends one message and reads its answer (blocking)."""
        conn.sendall(self.request_bytes(message))
        return self.read_answer(conn, buf, message.get("id"))

    def read_answer(self, conn: socket.socket, buf: bytearray, want: int | None) -> tuple[dict, dict]:
        while True:
            parsed = parse_response(buf)
            if parsed is None:
                chunk = conn.recv(65536)
                if not chunk:
                    raise SystemExit(f"{self.proc.args[0]} closed the connection")
                buf += chunk
                continue
            used, status, headers, body = parsed
            del buf[:used]
            return headers, self.check(status, headers, body, want)

    def check(self, status: int, headers: dict, body: bytes, want: int | None) -> dict:
        if status >= 300:
            raise SystemExit(f"{self.proc.args[0]}: HTTP {status}: {body[:300]!r}")
        if want is None:
            return {}
        for message in messages(headers, body):
            if message.get("id") == want:
                if "error" in message or message.get("result", {}).get("isError"):
                    raise SystemExit(f"{self.proc.args[0]}: {message}")
                return message
        raise SystemExit(f"{self.proc.args[0]}: no answer to {want} in {body[:300]!r}")

    def sequential(self, calls: int) -> tuple[list[float], float]:
        latencies = []
        cpu = self.cpu_s()
        for _ in range(calls):
            started = time.perf_counter()
            want, request = self.call_bytes()
            self.conn.sendall(request)
            self.read_answer(self.conn, self.buf, want)
            latencies.append(time.perf_counter() - started)
        return latencies, self.cpu_s() - cpu

    def concurrent(self, calls: int, in_flight: int) -> tuple[float, float]:
        """Calls per second with `in_flight` sockets each one call deep."""
        conns = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(in_flight)]
        sel = selectors.DefaultSelector()
        state = {}
        for c in conns:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(c, selectors.EVENT_READ)
        cpu = self.cpu_s()
        started = time.perf_counter()
        sent = done = 0
        for c in conns:
            want, request = self.call_bytes()
            state[c] = [bytearray(), want]
            c.sendall(request)
            sent += 1
        while done < calls:
            for key, _ in sel.select():
                c = key.fileobj
                st = state[c]
                chunk = c.recv(65536)
                if not chunk:
                    raise SystemExit(f"{self.proc.args[0]} closed a connection")
                st[0] += chunk
                parsed = parse_response(st[0])
                if parsed is None:
                    continue
                used, status, headers, body = parsed
                del st[0][:used]
                self.check(status, headers, body, st[1])
                done += 1
                if sent < calls:
                    st[1], request = self.call_bytes()
                    c.sendall(request)
                    sent += 1
        rate = calls / (time.perf_counter() - started)
        spent = self.cpu_s() - cpu
        sel.close()
        for c in conns:
            c.close()
        return rate, spent

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
