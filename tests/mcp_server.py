"""A real MCP server for the tests: the `mcp` package's own MCPServer over streamable HTTP.

    python -m tests.mcp_server --port N [--token T] [--name NAME]

prints ``mcp server listening on 127.0.0.1:N`` once its socket is bound. With --token, every
request without ``Authorization: Bearer T`` is answered 401. Its tools: ``echo`` (the text
back), ``slow`` (answers after some seconds), ``signal`` (answers once a file exists: the test's
signal), ``hang`` (never answers), ``fail`` (an error result), ``weather`` (structured output),
``count`` (how many times it ran: a side effect) and ``grow`` (adds a tool and notifies the
clients listening for tool list changes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ToolsListChanged
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send


class Weather(BaseModel):
    city: str
    celsius: float


def build(name: str) -> MCPServer:
    bus = InMemorySubscriptionBus()
    server = MCPServer(name, log_level="WARNING", subscriptions=bus)
    runs = {"count": 0}

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Answer after some seconds.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(description="Answer once the file at this path exists (the test's signal).")
    async def signal(path: str) -> str:
        while not os.path.exists(path):
            await asyncio.sleep(0.02)
        return f"signalled {os.path.basename(path)}"

    @server.tool(description="Never answer.")
    async def hang() -> str:
        await asyncio.sleep(3600)
        return "woke"

    @server.tool(description="Fail with the message given.")
    def fail(message: str) -> str:
        raise ToolError(message)

    @server.tool(description="The weather in a city.")
    def weather(city: str) -> Weather:
        return Weather(city=city, celsius=21.5)

    @server.tool(description="Count the calls: a side effect.")
    def count() -> str:
        runs["count"] += 1
        return f"count {runs['count']}"

    @server.tool(description="Add a tool of this name (it echoes), and tell the listening clients.")
    async def grow(name: str) -> str:
        def grown(text: str) -> str:
            return f"{name}: {text}"

        server.add_tool(grown, name=name, description="Grown at run time.")
        await bus.publish(ToolsListChanged())
        return f"added {name}"

    return server


class RequireToken:
    """Refuse every request that does not carry the bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    parser.add_argument("--name", default="tests")
    args = parser.parse_args()
    app: ASGIApp = build(args.name).streamable_http_app()
    if args.token:
        app = RequireToken(app, args.token)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(64)
    print(f"mcp server listening on 127.0.0.1:{args.port}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    asyncio.run(server.serve(sockets=[sock]))
    sys.exit(0)


if __name__ == "__main__":
    main()
