"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real remote
MCP server (server-everything in streamableHttp mode).

It forwards every request as it is, streaming the answer back chunk by
chunk (a Streamable HTTP POST may answer with an SSE stream), and records
what passed: method, path, the Authorization header and the JSON-RPC
method of each POST. A test can make the next POSTs fail instead:

    with FaultProxy(upstream_port) as proxy:
        proxy.fail_next(2, 429, headers={"Retry-After": "1"})
        ... the next two POSTs get a 429 and never reach the server ...
        assert proxy.posts("tools/call") == 3

Only the standard library: it runs on threads in the test's own process
and binds a free loopback port.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    rpc_method: str | None
    status: int = 0


@dataclass
class Fault:
    count: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    only: str | None = None  # a JSON-RPC method, or every POST


class FaultProxy:
    def __init__(self, upstream_port: int, tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate chain file, key file) to serve HTTPS."""
        self.upstream_port = upstream_port
        self.seen: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        # A request check in front of the server (oauth_server.py's bearer
        # check): (method, path, headers, body) -> None to forward, or
        # (status, headers, body) to answer instead.
        self.gate: Callable[[str, str, Any, bytes], tuple[int, dict[str, str], bytes] | None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/mcp", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def fail_next(self, count: int, status: int, headers: dict[str, str] | None = None, only: str | None = None) -> None:
        """The next `count` POSTs (of JSON-RPC method `only`, if given) get
        `status` with `headers` and an empty body, without reaching the server."""
        with self._lock:
            self._faults.append(Fault(count, status, headers or {}, only))

    def posts(self, rpc_method: str) -> int:
        """How many POSTs of `rpc_method` reached the server."""
        with self._lock:
            return sum(1 for s in self.seen if s.rpc_method == rpc_method and s.status != 0 and s.status < 400)

    def _take_fault(self, rpc_method: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and (fault.only is None or fault.only == rpc_method):
                    fault.count -= 1
                    return fault
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rpc_method = None
                if body:
                    try:
                        rpc_method = json.loads(body).get("method")
                    except (ValueError, AttributeError):
                        pass
                seen = Seen(self.command, self.path, self.headers.get("Authorization"), rpc_method)
                with proxy._lock:
                    proxy.seen.append(seen)
                verdict = proxy.gate(self.command, self.path, self.headers, body) if proxy.gate else None
                if verdict is not None:
                    status, headers, answer = verdict
                    seen.status = status
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                fault = proxy._take_fault(rpc_method) if self.command == "POST" else None
                if fault is not None:
                    seen.status = fault.status
                    self.send_response(fault.status)
                    for k, v in fault.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    reply = upstream.getresponse()
                except OSError:
                    seen.status = 502
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                seen.status = reply.status
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                if reply.status in (204, 304):
                    self.end_headers()
                    upstream.close()
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while chunk := reply.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (OSError, ValueError, http.client.HTTPException):
                    # The server died mid-answer (a test killed it): cut the
                    # client's stream off as the server's was.
                    pass
                finally:
                    upstream.close()

            do_GET = do_POST = do_DELETE = _forward

        return Handler
