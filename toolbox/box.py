"""The process's MCP servers, and what agents offer of their tools.

Configured by every table the router serves (server/app.py): a server whose url and
credentials stay keeps its session across a reload; a new one connects in the background; a
removed one is closed. The offered names are computed over every connected server's allowed
tools, servers in declared order and tools by name, so an agent's list stays the same from one
request to the next (and the provider's prompt cache with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dsl.table import McpLoop, McpServer
from ops import metrics
from toolbox import results
from toolbox.definitions import RENDERERS, tool_name
from toolbox.naming import offered_names
from toolbox.results import ToolResult, arguments_of

if TYPE_CHECKING:
    from toolbox.connection import ServerConnection


def _allowed(settings: McpServer, tool: str) -> bool:
    if settings.allow and not any(fnmatch.fnmatchcase(tool, p) for p in settings.allow):
        return False
    return not any(fnmatch.fnmatchcase(tool, p) for p in settings.deny)


class Toolbox:
    """Sessions by server name, the offered names, and the tool definitions by agent and format."""

    def __init__(self) -> None:
        self.connections: dict[str, ServerConnection] = {}
        self.names: Mapping[str, tuple[str, str]] = {}  # offered name → (server, tool)
        self._offers: dict[tuple[tuple[str, ...], str], tuple[dict[str, Any], ...]] = {}
        self._closing: set[asyncio.Task[None]] = set()  # sessions a reload dropped, being closed

    def configure(self, wanted: Mapping[str, McpServer]) -> None:
        """Serve these servers (a table's mcp_servers), on the running event loop; never waits for one."""
        if not wanted and not self.connections:
            return
        # Imported here: the SDK takes a second to import, which a gateway without MCP servers skips.
        from toolbox.connection import ServerConnection

        kept: dict[str, ServerConnection] = {}
        for name, connection in self.connections.items():
            settings = wanted.get(name)
            if settings is not None and (settings.url, settings.headers) == (
                    connection.settings.url, connection.settings.headers):
                connection.settings = settings  # timeout, tools, max_result, refresh: no new session
                kept[name] = connection
            else:
                if settings is None:  # gone from the file: gone from /metrics
                    with contextlib.suppress(KeyError):
                        metrics.MCP_SERVER_UP.remove(name)
                task = asyncio.get_running_loop().create_task(connection.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self.connections = {name: kept.get(name) or ServerConnection(settings, self._tools_changed)
                            for name, settings in wanted.items()}
        self._tools_changed()

    def _tools_changed(self) -> None:
        self.names = offered_names(
            (name, tool.name)
            for name, connection in self.connections.items()
            for tool in connection.tools if _allowed(connection.settings, tool.name)
        )
        self._offers = {}

    def offered(
        self, loop: McpLoop, fmt: str, taken: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], ...]:
        """The `tools` entries an agent's requests add after the client's own, in `fmt`
        ("openai" or "anthropic"), leaving out any whose name the client's own tools `taken`
        (a provider refuses two tools of one name). Shared between requests: copy before
        changing one."""
        offer = self._offer(loop, fmt)
        return tuple(t for t in offer if tool_name(t) not in taken) if taken else offer

    def _offer(self, loop: McpLoop, fmt: str) -> tuple[dict[str, Any], ...]:
        key = (loop.servers, fmt)
        offer = self._offers.get(key)
        if offer is None:
            render = RENDERERS[fmt]
            offer = self._offers[key] = tuple(
                render(offered, tool.description or tool.title or "", tool.input_schema)
                for server in loop.servers
                for offered, tool in self._tools_of(server)
            )
        return offer

    def _tools_of(self, server: str) -> list[tuple[str, Any]]:
        connection = self.connections.get(server)
        if connection is None:
            return []
        by_name = {tool.name: tool for tool in connection.tools}
        return [(offered, by_name[tool]) for offered, (owner, tool) in self.names.items()
                if owner == server and tool in by_name]

    def owns(self, loop: McpLoop, name: str) -> bool:
        """Whether `name` is one of the tools this agent offers (else it is the client's own)."""
        found = self.names.get(name)
        return found is not None and found[0] in loop.servers

    async def call(self, name: str, arguments: Any) -> ToolResult:
        """Run the tool offered as `name` with the model's `arguments` (a JSON text or an object).
        Never raises: a failure is an error result for the model."""
        found = self.names.get(name)
        connection = self.connections.get(found[0]) if found is not None else None
        if found is None or connection is None:
            metrics.MCP_TOOL_CALLS.labels(server="", tool="", outcome="unknown").inc()
            return results.failure(f"no tool named '{name[:64]}' is available", "unknown")
        parsed = arguments_of(arguments)
        if isinstance(parsed, str):
            metrics.MCP_TOOL_CALLS.labels(server=found[0], tool=found[1], outcome="bad_arguments").inc()
            return results.failure(f"tool '{name}' was not run: {parsed}", "bad_arguments")
        return await connection.call(found[1], parsed)

    def snapshot(self) -> dict[str, Any]:
        """/statsz `mcp`: each server's session and calls, in declared order."""
        offered = [server for server, _ in self.names.values()]
        return {name: {**connection.snapshot(), "offered": offered.count(name)}
                for name, connection in self.connections.items()}

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections.values()), *self._closing)
        self.connections = {}
