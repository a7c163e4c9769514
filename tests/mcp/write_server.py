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

import os

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


if __name__ == "__main__":
    server.run()
