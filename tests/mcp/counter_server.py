"""A stdio MCP server that keeps state per process: `count` answers
`pid N`, N counting this process's calls from 1. Through a shared
upstream two clients see one count; per-client, each its own.

With $COUNTER_LINGER (seconds), a non-daemon thread keeps the process
alive that long after its stdin closes, as a server that does not notice
its client left would: only a signal ends it sooner, so a test can tell
whether the gateway escalated to SIGTERM. With $COUNTER_IGNORE_TERM it
ignores SIGTERM too, and only SIGKILL ends it. `steps` reports progress,
so two processes' progress can be told apart. Its pid goes to $COUNTER_PIDS
(appended), so a test can find every process it ever started.

Built on the `mcp` package's own server, run as `python counter_server.py`
from the test venv.
"""

import os
import signal
import threading
import time

import anyio
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("mender-test-counter")
calls = 0


@server.tool(description="Count this call; answers `pid N`.")
def count() -> str:
    global calls
    calls += 1
    return f"{os.getpid()} {calls}"


@server.tool(description="Report `n` progress steps, 0.3 s apart; answers `pid n`.")
async def steps(n: int, ctx: Context) -> str:
    for i in range(1, n + 1):
        await ctx.report_progress(i, n)
        await anyio.sleep(0.3)
    return f"{os.getpid()} {n}"


if __name__ == "__main__":
    if os.environ.get("COUNTER_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if pids := os.environ.get("COUNTER_PIDS"):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
    if linger := float(os.environ.get("COUNTER_LINGER", "0")):
        threading.Thread(target=time.sleep, args=(linger,)).start()
    server.run()
