"""One MCP server's session, kept for the life of the serving process.

A background task connects (streamable HTTP, the official SDK's `Client`), reads the tool
list, reads it again every `refresh` (and at once when a call finds the session broken), and
reconnects with back-off when anything fails. Requests never wait for it: they use the session
when there is one, and a server without one simply offers no tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from dsl.table import McpServer
from ops import metrics
from toolbox import results
from toolbox.results import ToolResult

log = logging.getLogger("gateway")
# The SDK's own lines and its HTTP client's: a line per request, and tracebacks (with whatever the
# server said) of the failures this module reports in one line of its own.
logging.getLogger("httpx2").setLevel(logging.WARNING)
logging.getLogger("mcp").setLevel(logging.CRITICAL)

CONNECT_TIMEOUT = 10.0  # seconds for the TCP connection
LIST_TIMEOUT = 30.0  # seconds for the handshake, and for one page of the tool list
BACKOFF = (0.5, 30.0)  # first and longest pause between two connection attempts
MAX_PAGES = 100  # of one tool listing: a server that pages for ever cannot hold the task
MAX_ERROR = 300  # characters of an error kept for /statsz
_LATENCIES = 256  # recent call durations kept for the median


class ServerConnection:
    """The session to one server, its tools, and what its calls did (for /statsz)."""

    def __init__(self, settings: McpServer, tools_changed: Callable[[], None]) -> None:
        self.settings = settings
        self.tools: tuple[mcp_types.Tool, ...] = ()  # every tool the server lists, by name
        self.client: Client | None = None
        self.protocol: str | None = None
        self.listening = False  # told of tool list changes (else only the periodic refresh sees them)
        self.last_error: str | None = None
        self.calls = 0
        self.errors = 0  # calls that did not answer, or answered an error result
        self.latencies: deque[float] = deque(maxlen=_LATENCIES)
        self._refused: int | None = None  # this attempt's last HTTP error status (the SDK's errors omit it)
        self._tools_changed = tools_changed
        self._wake = asyncio.Event()  # read the tool list now
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def connected(self) -> bool:
        return self.client is not None

    async def _run(self) -> None:
        pause = BACKOFF[0]
        while True:
            try:
                await self._serve_session()
            except Exception as exc:  # whatever failed, the next attempt starts afresh
                if self._lost(exc):  # the session was up: start the back-off over
                    pause = BACKOFF[0]
            await asyncio.sleep(pause)
            pause = min(pause * 2, BACKOFF[1])

    async def _serve_session(self) -> None:
        settings = self.settings
        self._refused = None
        async with AsyncExitStack() as stack:
            timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=max(300.0, settings.timeout + 10))
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=dict(settings.headers), timeout=timeout,
                event_hooks={"response": [self._note_status]}))
            client = Client(streamable_http_client(settings.url, http_client=http),
                            read_timeout_seconds=LIST_TIMEOUT, message_handler=self._message,
                            client_info=mcp_types.Implementation(name="llm-gateway", version="1"))
            # The handshake is bounded by read_timeout_seconds (a cancel scope around it would
            # not nest with the task group the client keeps open).
            await stack.enter_async_context(client)
            self.protocol = client.protocol_version
            await self._list_tools(client)
            self.client, self.last_error = client, None
            metrics.MCP_SERVER_UP.labels(server=settings.name).set(1)
            log.info("MCP server %s connected (%s, %d tools)", settings.name, self.protocol, len(self.tools))
            self._tools_changed()
            async with anyio.create_task_group() as group:
                group.start_soon(self._listen, client)
                await self._refresh(client)

    async def _refresh(self, client: Client) -> None:
        """Read the tool list every `refresh`, or when woken; a failure ends the session."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.refresh)
            self._wake.clear()
            if await self._list_tools(client):
                self._tools_changed()

    async def _listen(self, client: Client) -> None:
        """Wake the refresh when the server says its tool list changed (2026-07-28 servers:
        `subscriptions/listen`; older ones send the notification unasked, see `_message`)."""
        try:
            async with client.listen(tools_list_changed=True) as changes:
                self.listening = True
                async for _ in changes:
                    self._wake.set()
        except Exception as exc:  # an older protocol, a refusal, a lost stream: the periodic refresh stays
            log.debug("MCP server %s: no tool list notifications: %s", self.settings.name, self.describe(exc))
        finally:
            self.listening = False

    async def _list_tools(self, client: Client) -> bool:
        """Read every page of the tool list; whether it changed."""
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        listed = tuple(sorted(tools, key=lambda tool: tool.name))
        changed = listed != self.tools
        self.tools = listed
        return changed

    async def _note_status(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self._refused = response.status_code

    async def _message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._wake.set()

    def _lost(self, exc: BaseException) -> bool:
        """The session ended or never began: its tools are withdrawn. Whether it had been up."""
        was_up, before = self.client is not None, self.last_error
        self.client = None
        self.last_error = self.describe(exc)
        if self._refused is not None and not was_up:
            self.last_error = f"HTTP {self._refused}: {self.last_error}"
        metrics.MCP_SERVER_UP.labels(server=self.settings.name).set(0)
        if was_up or self.last_error != before:  # once per outage and cause, not per attempt
            log.warning("MCP server %s unavailable: %s", self.settings.name, self.last_error)
        if self.tools:
            self.tools = ()
            self._tools_changed()
        return was_up

    def describe(self, exc: BaseException) -> str:
        """An error in a line, for /statsz and the log: the innermost cause, without credentials."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, TimeoutError):
            text = "timed out"
        elif isinstance(exc, httpx2.HTTPStatusError):
            text = f"HTTP {exc.response.status_code}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self.settings.scrub(text)[:MAX_ERROR]

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool call, cut at the server's timeout; never raises (the model is told)."""
        settings = self.settings
        client = self.client
        if client is None:
            why = f"MCP server '{settings.name}' is unavailable: {self.last_error}"
            return results.failure(why, "unavailable")
        started = time.monotonic()
        try:
            call = client.call_tool(tool, arguments, read_timeout_seconds=settings.timeout)
            answer = await asyncio.wait_for(call, settings.timeout + 1.0)  # the SDK's timeout, backed
        except (TimeoutError, MCPError) as exc:
            if isinstance(exc, TimeoutError) or exc.code == mcp_types.REQUEST_TIMEOUT:
                result = results.failure(f"tool '{tool}' timed out after {settings.timeout:g}s", "timeout")
            else:
                result = self._broken(tool, exc)
        except Exception as exc:  # the transport's, the SDK's: the session may be gone
            result = self._broken(tool, exc)
        else:
            result = results.from_call(answer, settings.max_result)
        self.latencies.append(time.monotonic() - started)
        self.calls += 1
        self.errors += result.is_error
        metrics.MCP_TOOL_CALLS.labels(server=settings.name, tool=tool, outcome=result.outcome).inc()
        return result

    def _broken(self, tool: str, exc: BaseException) -> ToolResult:
        """A call that failed below the tool: check the session now (a relist fails → reconnect)."""
        self.last_error = self.describe(exc)
        self._wake.set()
        return results.failure(f"tool '{tool}' failed: {self.last_error}", "failed")

    def snapshot(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        return {
            "connected": self.connected,
            "protocol_version": self.protocol if self.connected else None,
            "tools": len(self.tools),
            "tool_list_notifications": self.listening,
            "calls": self.calls,
            "errors": self.errors,
            "latency_ms": {
                "p50": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
                "avg": round(sum(latencies) / len(latencies) * 1000, 1) if latencies else None,
            },
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            await asyncio.wait_for(self._task, 2.0)

