"""A remote (Streamable HTTP) MCP server for tests/mcp/test_tracing.py that
records how each request came: its `traceparent` header and its
`_meta.traceparent`, one JSON line per request in $TRACE_FILE.

Stateless and JSON-only (no sessions, no SSE stream: a GET is 405, as
the spec allows). One tool, `whoami`, answers "ok".

Run as `PORT=N python trace_http_server.py`; listens on 127.0.0.1 only."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRACE_FILE = os.environ["TRACE_FILE"]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "POST")
        self.end_headers()

    def do_DELETE(self) -> None:
        self.send_response(405)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        message = json.loads(self.rfile.read(length) or b"{}")
        params = message.get("params") or {}
        with open(TRACE_FILE, "a") as f:
            f.write(json.dumps({
                "method": message.get("method"),
                "header": self.headers.get("traceparent"),
                "meta": (params.get("_meta") or {}).get("traceparent"),
            }) + "\n")
        if "id" not in message:
            self.send_response(202)
            self.end_headers()
            return
        method, result = message.get("method"), None
        if method == "initialize":
            result = {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mender-test-trace", "version": "0"},
            }
        elif method == "tools/list":
            result = {"tools": [{"name": "whoami", "inputSchema": {"type": "object"},
                                 "annotations": {"readOnlyHint": True}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "ok"}], "isError": False}
        else:
            result = {}
        body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
