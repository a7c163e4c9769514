"""A scripted HTTP server on 127.0.0.1 for mcp-server-fetch to fetch from.

Each path gets a script of replies: the n-th request to the path gets the
n-th reply, and the last reply repeats. The server counts the requests per
path, so a test can tell how many attempts really reached the upstream
(retries the proxy made, not just what the client saw).

    with FaultServer() as web:
        web.script("/flaky", Reply(429, headers={"Retry-After": "1"}), Reply(200, "fine"))
        url = web.url("/flaky")
        ...
        assert web.hits("/flaky") == 2

Only the standard library: it runs in the test's own interpreter, on a
thread, and binds a free port on loopback only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering: longer than the proxy's call-timeout
    # makes a tool call that is slow but whose server stays responsive.
    delay: float = 0.0


class FaultServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._hits: dict[str, int] = {}
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # Handler threads of a slow reply must not keep the test process alive.
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Wake slow replies first, so shutdown does not wait for them.
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        assert replies, "a script needs at least one reply"
        with self._lock:
            self._scripts[path] = list(replies)
            self._hits[path] = 0

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            n = self._hits.get(path, 0)
            self._hits[path] = n + 1
            script = self._scripts.get(path)
        if script is None:
            return Reply(404, f"no script for {path}")
        return script[min(n, len(script) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                reply = fault._next_reply(self.path)
                if reply.delay:
                    fault._stopping.wait(reply.delay)
                body = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # The fetcher gave up on a slow reply (its attempt timed out).
                    pass

            def log_message(self, format: str, *args: object) -> None:
                # pytest shows stderr of failing tests: keep it to the proxy's.
                pass

        return Handler


if __name__ == "__main__":
    # Manual check: python tests/mcp/fault_server.py, then curl the printed URL.
    with FaultServer() as web:
        web.script("/hello", Reply(429, headers={"Retry-After": "1"}), Reply(200, "hello"))
        print(web.url("/hello"), flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
