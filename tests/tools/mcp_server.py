"""A real MCP server for the tests (the official `mcp` package): stdio, or streamable HTTP."""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("demo")


@server.tool(description="Look a word up in the demo dictionary.")
def lookup(word: str) -> str:
    return f"{word}: a demo definition (pid {os.getpid()})"


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Wait for a number of seconds, then answer.")
async def wait(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"waited {seconds} s"


@server.tool(description="Fail with an error.")
def broken() -> str:
    raise ToolError("the demo backend is on fire")


@server.tool(description="Exit the server process in the middle of the call.")
def die() -> str:
    os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http-port", type=int, default=0, help="streamable HTTP on 127.0.0.1")
    args = parser.parse_args()
    if args.http_port:
        server.run("streamable-http", host="127.0.0.1", port=args.http_port)
    else:
        server.run()


if __name__ == "__main__":
    main()
