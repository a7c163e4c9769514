"""A stdio MCP server with one slow, non-idempotent tool: `slow_write`.

The third-party servers annotate every slow tool readOnly/idempotent, so
none of them can show that the proxy does NOT retry a write that was cut
off by a crash. This one can: `slow_write` carries no annotations, takes
`seconds` to finish, and appends one line per invocation to the file named
by $WRITE_LOG (before sleeping), so a test can count how many times the
upstream really ran it. A run cut short by `notifications/cancelled` adds
a `cancelled NOTE` line, so a test can see a cancellation arrive.

Built on the `mcp` package's own server, run as
`python write_server.py` from the test venv.
"""

import fcntl
import os
import threading
import time

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("mender-test-writes")


# No annotations: for the proxy this is a write, never repeated unless
# listed in retry-tools.
@server.tool(description="Record a write, then take `seconds` to confirm it.")
async def slow_write(note: str, seconds: float = 0.0) -> str:
    with open(os.environ["WRITE_LOG"], "a") as log:
        log.write(f"{os.getpid()} {note}\n")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        with open(os.environ["WRITE_LOG"], "a") as log:
            log.write(f"cancelled {note}\n")
        raise
    return f"wrote {note}"


# A server that hangs up without exiting: its stdout closes at once, but a
# non-daemon thread keeps the process alive for 5 s, longer than the
# proxy's grace for an exit. What `mender status` says in that window is
# what a test checks.
@server.tool(description="Close stdout, then linger 5 s before exiting.")
def hang_up() -> str:
    threading.Thread(target=time.sleep, args=(5,)).start()
    # The stdio transport writes to a private duplicate of the stdout pipe
    # (fd 1 itself is diverted to stderr): close every write end of a pipe
    # other than stderr's, so the proxy reads end-of-file.
    stderr = os.readlink("/proc/self/fd/2")
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            writes = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        except OSError:
            continue
        if target.startswith("pipe:") and target != stderr and writes:
            os.close(fd)
    return "hung up"


if __name__ == "__main__":
    server.run()
