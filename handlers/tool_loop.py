"""The MCP tool loop of an agent with `mcp:` servers: the gateway runs the model's calls to
their tools and asks the model again, until the model answers the client.

Each round is a whole walk over the agent's targets (breakers, strategies, limits, fallback),
whose answer its own sink reads instead of the client, so a tool that has run is never run
again when the next round falls back to another target. The loop works in the client's format
(handlers/tool_turns.py); the route's converters and answer stages serve every round. A buffered
request's rounds are read whole (a Capture); a streamed one's are streamed, their text relayed as
it comes (handlers/tool_stream.py), with `: keep-alive` comments while tools run and one end.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from converters.usage import Usage
from dsl.table import McpLoop, Target
from handlers.errors import stream_error_event
from handlers.tool_stream import RoundStream, StreamShared
from handlers.tool_turns import (
    ToolCall,
    add_usage,
    calls_of,
    keeping_calls,
    next_turns,
    stream_end,
    tools_disabled,
)
from ops import metrics
from stages import stage
from toolbox.definitions import tool_name
from toolbox.results import ToolResult
from upstream.attempt import Head, StandIn
from upstream.failure import Failure, agent_answer

if TYPE_CHECKING:
    from handlers.chat import ChatHandler

KEEP_ALIVE_EVERY = 10.0  # seconds between `: keep-alive` comments while tools run (one at once)


class Capture(StandIn):
    """The sink of a round: keeps the answer instead of sending it."""

    client: ChatHandler

    def __init__(self, client: ChatHandler) -> None:
        super().__init__(client)
        self.head: Head | None = None
        self.body: bytes | None = None

    @property
    def committed(self) -> bool:
        return False  # nothing of a round reaches the client: the walk may always fall back

    @property
    def over(self) -> bool:
        return self.client.client_gone

    def begin(self, head: Head) -> None:
        self.head = head

    def send(self, data: bytes) -> None:
        raise AssertionError("a tool loop's rounds are read whole, never relayed")

    def end(self, body: bytes) -> None:
        self.body = body

    def end_stream(self, label: str, kind: str, message: str) -> None:
        raise AssertionError("a tool loop's rounds are read whole, never relayed")


class ToolLoop:
    """One request's loop: its rounds, the tool calls run, and the usage summed over rounds."""

    def __init__(self, handler: ChatHandler, agent: str, settings: McpLoop) -> None:
        self.handler = handler
        self.agent = agent
        self.settings = settings
        self.fmt = handler.route.ingress
        self.usage = Usage()  # every round's, in the gateway's terms (accounting)
        self.usage_body: dict[str, Any] = {}  # every round's `usage` object, in the client's format
        self.streamed = False
        self.with_usage = False
        self.shared = StreamShared()  # a streamed request's rounds: one response id, one start

    def add_usage(self, usage: Usage | None) -> None:
        """A round's usage, as the upstream reported it."""
        if usage is None or not usage.reported:
            return
        total = self.usage
        total.reported = True
        total.input += usage.input
        total.output += usage.output
        total.cached += usage.cached
        total.reasoning += usage.reasoning
        total.cache_write += usage.cache_write

    async def run(self, targets: tuple[Target, ...], document: dict[str, Any]) -> None:
        """Walk rounds until the model answers the client, or a limit or a failure ends the loop."""
        handler, settings, fmt = self.handler, self.settings, self.fmt
        toolbox = handler.runtime.toolbox
        self.streamed = document.get("stream") is True
        options = document.get("stream_options")
        self.with_usage = self.streamed and isinstance(options, dict) and options.get("include_usage") is True
        request = {k: v for k, v in document.items() if k not in ("stream", "stream_options")}
        if self.streamed:
            request["stream"] = True
            if fmt == "openai":  # every round's usage, to sum
                request["stream_options"] = {"include_usage": True}
        own = request.get("tools") if isinstance(request.get("tools"), list) else []
        taken = frozenset(name for tool in own if isinstance(tool, dict) and (name := tool_name(tool)))
        offered = toolbox.offered(settings, fmt, taken)
        if offered:
            request["tools"] = [*own, *offered]
        ends = time.monotonic() + settings.deadline
        iterations = calls_run = 0
        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                return self._past_deadline()
            metrics.MCP_LOOP_ITERATIONS.labels(agent=self.agent).inc()
            sink = RoundStream(handler, fmt, lambda name: toolbox.owns(settings, name), self.shared) \
                if self.streamed else Capture(handler)
            try:
                async with asyncio.timeout(remaining):
                    failures = await handler.walk_targets(targets, request, sink)
            except TimeoutError:
                return self._past_deadline()
            if handler.client_gone:
                return self._left()
            if handler.over or (isinstance(sink, RoundStream) and sink.error):
                return self._ended_in_round()
            if failures:
                return self._failed(failures)
            answer = sink.whole_answer() if isinstance(sink, RoundStream) else _parsed(sink.body)
            if answer is None:
                message = "the model's answer is not a JSON object"
                return self._error("error", 502, message, "bad_upstream_body")
            add_usage(self.usage_body, answer.get("usage"))
            calls = calls_of(answer, fmt)
            ours = [call for call in calls if toolbox.owns(settings, call.name)]
            if not ours or iterations >= settings.max_iterations:
                theirs = {call.id for call in calls if call not in ours}
                reason = "max_iterations" if iterations >= settings.max_iterations else "answered"
                return self._answer(keeping_calls(answer, fmt, theirs) if ours else answer, reason)
            if len(ours) < len(calls):  # the client's own calls: the turn is the client's
                theirs = {call.id for call in calls if call not in ours}
                return self._answer(keeping_calls(answer, fmt, theirs), "client_tools")
            if calls_run + len(ours) > settings.max_tool_calls:
                message = (f"the model asked for more than the {settings.max_tool_calls} MCP tool calls "
                           f"agent '{self.agent}' runs for one request")
                return self._error("max_tool_calls", 400, message, "mcp_tool_call_limit")
            calls_run += len(ours)
            results = await self._run_calls(ours, ends)
            if handler.client_gone:
                return self._left()
            if results is None:
                return self._past_deadline()
            iterations += 1
            turns = next_turns(answer, fmt, results)
            # The route's checks see what the next round adds (redaction: the tools' results).
            added = {"model": document["model"], "messages": turns}
            refused = stage.refusal(handler.route.hooks, handler, added)
            if refused is not None:
                return self._error("refused", refused.status, refused.message, refused.reason)
            request = {**request, "messages": [*request["messages"], *turns]}
            if iterations >= settings.max_iterations:
                request = tools_disabled(request, fmt)
            fitted = handler.refit(targets, request)  # the tool turns may outgrow a window
            if fitted is None:
                message = handler.overflow_message()
                return self._error("context_overflow", 400, message, "context_length_exceeded")
            request = fitted

    async def _run_calls(
        self, calls: list[ToolCall], ends: float
    ) -> list[tuple[ToolCall, ToolResult]] | None:
        """Run the calls, `parallel` at once (each cut at its server's timeout), with keep-alive
        comments to a streaming client meanwhile; None when the deadline passed first."""
        toolbox = self.handler.runtime.toolbox
        gate = asyncio.Semaphore(self.settings.parallel)

        async def one(call: ToolCall) -> ToolResult:
            async with gate:
                return await toolbox.call(call.name, call.arguments)

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            pending: set[asyncio.Future[ToolResult]] = set(tasks)
            while pending and not self.handler.client_gone:
                if self.streamed:
                    self._keep_alive()
                remaining = ends - time.monotonic()
                if remaining <= 0:
                    return None
                _, pending = await asyncio.wait(pending, timeout=min(KEEP_ALIVE_EVERY, remaining))
            return [(call, task.result()) for call, task in zip(calls, tasks, strict=True) if task.done()]
        finally:
            for task in tasks:
                task.cancel()  # those still running: the deadline passed, or the client left

    def _keep_alive(self) -> None:
        """An SSE comment, the stream's head first when it is the first byte."""
        handler = self.handler
        if not handler.committed:
            self._stream_head()
        handler.write(b": keep-alive\n\n")
        handler.flush()

    def _stream_head(self) -> None:
        handler = self.handler
        handler.set_status(200)
        handler.set_header("Content-Type", "text/event-stream")
        handler.set_header("Cache-Control", "no-cache")
        handler.mark_first_byte()

    def _answer(self, answer: dict[str, Any], reason: str) -> None:
        """The model's answer to the client, with the usage of every round."""
        if self.usage_body:
            usage = answer.get("usage")
            answer = {**answer, "usage": {**(usage if isinstance(usage, dict) else {}), **self.usage_body}}
        self._stopped(reason)
        handler = self.handler
        handler.answered(self.usage)
        if self.streamed:
            if not handler.committed:
                self._stream_head()
            handler.finish(stream_end(answer, self.fmt, self.with_usage, self.shared.response_id))
            return
        handler.set_status(200)
        handler.set_header("Content-Type", "application/json")
        handler.end(orjson.dumps(answer))

    def _failed(self, failures: list[Failure]) -> None:
        """No target answered a round: the client gets why, in its shape."""
        self._stopped("error")
        answer = agent_answer(failures)
        if self.usage.reported:
            self.handler.answered(self.usage)  # the rounds before did spend tokens
        if self.handler.committed:
            self.handler.finish(stream_error_event(self.fmt, answer.status, answer.message))
        else:
            self.handler.answer_error(answer)

    def _past_deadline(self) -> None:
        message = (f"agent '{self.agent}' found no answer within its MCP tool loop deadline "
                   f"of {self.settings.deadline:g}s")
        self._error("deadline", 504, message, "mcp_loop_deadline")

    def _error(self, reason: str, status: int, message: str, code: str) -> None:
        self._stopped(reason)
        handler = self.handler
        if self.usage.reported:
            handler.answered(self.usage)
        if handler.committed:
            handler.finish(stream_error_event(self.fmt, status, message))
        else:
            handler.fail(status, message, code)

    def _ended_in_round(self) -> None:
        """A round's stream broke after its first bytes, or relayed an error event: it ended
        the client's stream (or does now, after that event)."""
        self._stopped("error")
        if self.usage.reported:
            self.handler.answered(self.usage)
        if not self.handler.over:
            self.handler.finish()

    def _left(self) -> None:
        """The client left: nothing to answer, but the rounds so far did spend tokens."""
        self._stopped("client_gone")
        if self.usage.reported:
            self.handler.answered(self.usage)

    def _stopped(self, reason: str) -> None:
        metrics.MCP_LOOP_STOPS.labels(agent=self.agent, reason=reason).inc()


def _parsed(body: bytes | None) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None
