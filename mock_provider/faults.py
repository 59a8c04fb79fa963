"""Fault scripting on the wire: plays what the model name's selectors (``behaviour.py``) ask
for — a status, a hang, slow headers, an empty body, a cut connection, an error mid-stream —
and the model's ``/_mock/faults`` script (``scripting.py``), and delivers normal answers with
the scripted delay."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from tornado.iostream import StreamClosedError

from mock_provider.behaviour import Behaviour, parse_model
from mock_provider.handler import REASONS, MockHandler
from mock_provider.plan import calls_now, tool_results
from mock_provider.scripting import FaultScript

SLOW_HEADERS_S = 2.0


# What marks the events that end a stream (OpenAI chat, Anthropic messages): `fault-cutend`
# cuts the stream before the first of them.
_ENDINGS = (b'"finish_reason":"', b"[DONE]", b"content_block_stop", b"message_stop")


class ScriptedHandler(MockHandler):
    """An endpoint whose answer the request's model name can delay, refuse or break."""

    tool_script: FaultScript | None = None  # a ``tool_calls`` script this chat request follows
    stream_fault = ""  # a ``stream`` script's "error", "empty" or "stall" (scripting.py)

    async def send_fault(self, status: int) -> None:
        """A ``fault-<status>`` answer. 401 quotes the key it was sent, as a careless provider
        would, in the body and in ``WWW-Authenticate``, and sends the body in three chunks
        that split the key, so a relay must scrub across chunk boundaries."""
        key = self.presented_key()
        if status != 401 or not key:
            self.send_api_error(status)
            return
        self.set_status(401, REASONS.get(401))
        self.set_header("Content-Type", "application/json")
        self.set_header("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{key}"')
        body = self.error_body(401, f"Incorrect API key provided: {key}.")
        middle = body.index(key.encode()) + len(key) // 2
        for piece in (body[: middle - 3], body[middle - 3 : middle + 3]):
            self.write(piece)
            try:
                await self.flush()
            except StreamClosedError:
                return
            await asyncio.sleep(0.02)
        self.finish(body[middle + 3 :])

    def presented_key(self) -> str:
        """The credential the caller sent (Bearer token or x-api-key), or ''."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.request.headers.get("x-api-key", "").strip()

    def stream_error_event(self) -> bytes:
        """What ``fault-streamerror`` sends after two pieces, in the endpoint's stream format."""
        raise NotImplementedError

    def delay_s(self, b: Behaviour) -> float:
        """Seconds between pieces: the model's ``delay-<ms>``, ``x-mock-delay-ms``, or ``--delay-ms``."""
        if b.delay_ms is not None:
            return b.delay_ms / 1000.0
        hdr = self.request.headers.get("x-mock-delay-ms")
        if hdr:
            try:
                return max(0.0, float(hdr)) / 1000.0
            except ValueError:
                pass
        return self.state.default_delay_ms / 1000.0

    async def follow_script(self, model: Any, req: dict[str, Any] | None = None) -> bool:
        """Count the request for its model and play the model's ``/_mock/faults`` script, if
        any; True when that already answered (or dropped) the request. A ``tool_calls`` script
        only applies to chat requests (``req``), and spends a use only on the calls it makes."""
        if not isinstance(model, str) or not model:
            return False
        script = self.state.faults.scripts.get(model)
        spend = script is None or script.kind != "tool_calls" or (
            req is not None and calls_now(req, script.after_result, self.anthropic))
        script = self.state.faults.take(model, spend)
        if script is None:
            return False
        if script.kind == "tool_calls":
            if req is None:
                return False
            if script.after_result != "fail" or not tool_results(req, self.anthropic):
                self.tool_script = script
                self.note_script({"tool_calls": len(script.calls) if spend else 0})
                return False
            script = FaultScript("fail", None)  # a model that breaks once its tools have run
        if script.kind == "delay":
            self.note_script({"first_byte_delay_ms": script.delay_ms})
            await self.pause(script.delay_ms / 1000.0)
            return self._disconnected
        if script.kind == "stream":
            self.note_script({"stream": script.stream})
            self.stream_fault = script.stream
            return False
        if script.kind == "refuse":
            self.note_script({"refuse": True})
            self._aborted = True
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                stream.close()
            return True
        self.note_script({"fail": script.status, "retry_after": script.retry_after})
        self.set_status(script.status, REASONS.get(script.status))
        if script.retry_after is not None:
            self.set_header("Retry-After", script.retry_after)
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(script.status, f"mock fault script: HTTP {script.status}"))
        return True

    def note_script(self, applied: dict[str, Any]) -> None:
        """Say in the request log what the model's script did to this request."""
        if self._entry is not None:
            self._entry["script"] = applied

    async def gate(self, model: Any) -> Behaviour | None:
        """Apply the model's script and its name's fault selectors; None when they answered."""
        if await self.follow_script(model):
            return None
        b = parse_model(model if isinstance(model, str) else "")
        if b.slow_headers:
            await asyncio.sleep(SLOW_HEADERS_S)
            if self._disconnected:
                return None
        status = b.fault_status
        if status is not None:
            await self.send_fault(status)
            return None
        if b.fault == "hang":
            await self.hang()
            return None
        if b.fault == "empty":
            self.set_header("Content-Type", "application/json")
            self.finish()
            return None
        return b

    async def reply(self, obj: Any, b: Behaviour) -> None:
        """Answer a JSON object, honouring the delay and ``fault-cut`` selectors."""
        await self.respond(orjson.dumps(obj), self.delay_s(b), b.fault == "cut")

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the client goes away first."""
        self._close_waiter = asyncio.get_running_loop().create_future()
        if not self._disconnected:
            await asyncio.wait([self._close_waiter], timeout=seconds)

    async def hang(self) -> None:
        """Send nothing until the client goes away."""
        self._close_waiter = asyncio.get_running_loop().create_future()
        if not self._disconnected:
            await self._close_waiter

    async def respond(self, body: bytes, delay: float, cut: bool,
                      content_type: str = "application/json") -> None:
        """The whole body after ``delay``, or (``cut``) half of it under a longer Content-Length."""
        if delay:
            await asyncio.sleep(delay)
            if self._disconnected:
                return
        self.set_header("Content-Type", content_type)
        if not cut:
            self.finish(body)
            return
        self.set_header("Content-Length", str(len(body) + 100))
        self.write(body[: len(body) // 2])
        await self.cut()

    async def stream(self, events: list[bytes], delay: float, fault: str | None,
                     content_type: str = "text/event-stream") -> None:
        """Write each piece with a flush (chunked encoding), faults cutting after two."""
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        if fault in ("cut", "streamerror"):
            events = events[:2]
        elif fault == "cutend" or self.stream_fault == "stall":
            ends = [i for i, event in enumerate(events) if any(mark in event for mark in _ENDINGS)]
            events = events[: ends[0] if ends else len(events)]
        elif self.stream_fault:
            events = events[:1]
        for i, event in enumerate(events):
            if i and delay:
                await asyncio.sleep(delay)
            if self._disconnected:
                return
            self.write(event)
            try:
                await self.flush()
            except StreamClosedError:
                self.on_connection_close()  # the client went away mid-answer, noticed here first
                return
        if fault in ("cut", "cutend"):
            await self.cut()
        elif self.stream_fault == "stall":
            await self.hang()
        elif fault == "streamerror" or self.stream_fault == "error":
            self.write(self.stream_error_event())

    async def cut(self) -> None:
        """Flush what is buffered, then drop the TCP connection mid-body."""
        self._aborted = True
        try:
            await self.flush()
        except StreamClosedError:
            return
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()

