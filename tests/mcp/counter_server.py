"""A stdio MCP server that keeps state per process: `count` answers
`pid N`, N counting this process's calls from 1. Through a shared
upstream two clients see one count; per-client, each its own.

With $COUNTER_LINGER (seconds), a non-daemon thread keeps the process
alive that long after its stdin closes, as a server that does not notice
its client left would: only a signal ends it sooner, so a test can tell
whether the gateway escalated to SIGTERM. Its pid goes to $COUNTER_PIDS
(appended), so a test can find every process it ever started.

Built on the `mcp` package's own server, run as `python counter_server.py`
from the test venv.
"""

import os
import threading
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("mender-test-counter")
calls = 0


@server.tool(description="Count this call; answers `pid N`.")
def count() -> str:
    global calls
    calls += 1
    return f"{os.getpid()} {calls}"


if __name__ == "__main__":
    if pids := os.environ.get("COUNTER_PIDS"):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
    if linger := float(os.environ.get("COUNTER_LINGER", "0")):
        threading.Thread(target=time.sleep, args=(linger,)).start()
    server.run()
