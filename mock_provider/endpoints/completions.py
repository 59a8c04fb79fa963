"""The completion endpoints the gateway's hot path and benchmark use: OpenAI
``/v1/chat/completions``, Anthropic ``/v1/messages`` (with the thinking rule the real API
enforces) and ``/v1/messages/count_tokens``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from mock_provider.behaviour import parse_model
from mock_provider.faults import SLOW_HEADERS_S, ScriptedHandler
from mock_provider.plan import Plan, make_plan, prompt_prefixes, scripted_plan
from mock_provider.wire.chat_completions import openai_body, openai_error, openai_events
from mock_provider.wire.messages import anthropic_body, anthropic_error, anthropic_events


class _CompletionBase(ScriptedHandler):
    """Shared request flow of the two completion endpoints; subclasses render formats."""

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def refusal(self, req: dict[str, Any]) -> str | None:
        """Why the real API would refuse this well-formed request, if it would."""
        return None

    async def post(self) -> None:
        # Kept inline rather than via json_body()/gate(): this is the benchmark's hot path.
        try:
            req = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            self.send_api_error(400, "request body is not valid JSON")
            return
        if not isinstance(req, dict):
            self.send_api_error(400, "request body must be a JSON object")
            return
        model = req.get("model")
        if await self.follow_script(model, req):
            return
        if not isinstance(model, str) or not model:
            model = "mock-model"
        b = parse_model(model)
        if b.slow_headers:
            await asyncio.sleep(SLOW_HEADERS_S)
            if self._disconnected:
                return
        status = b.fault_status
        if status is not None:
            if b.echo_key:
                self.send_api_error(status, f"mock fault: HTTP {status} for key {self.presented_key()}")
            else:
                await self.send_fault(status)
            return
        if b.fault == "hang":
            await self.hang()
            return
        if b.fault == "empty":
            self.set_header("Content-Type", "application/json")
            self.finish()
            return
        refusal = self.refusal(req)
        if refusal is not None:
            self.send_api_error(400, refusal)
            return
        script = self.tool_script
        plan = make_plan(req, model, b, self.anthropic) if script is None else scripted_plan(
            req, model, b, self.anthropic, script.calls, script.after_result, script.say)
        plan.bad_usage = b.bad_usage
        if b.cache:
            plan.cached_tokens = self.state.cached_tokens(prompt_prefixes(req, model, self.anthropic))
        n = next(self.state.ids)
        delay = self.delay_s(b)
        if req.get("stream"):
            await self.stream(self.render_stream(plan, model, n, req), delay, b.fault)
        else:
            await self.respond(self.render(plan, model, n, req), delay, b.fault == "cut")


class ChatCompletionsHandler(_CompletionBase):
    """POST /v1/chat/completions in the OpenAI format."""

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        return openai_body(plan, model, n)

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        opts = req.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        return openai_events(plan, model, n, include_usage)

    def stream_error_event(self) -> bytes:
        return b"data: " + openai_error(500, "mock fault: error mid-stream") + b"\n\n"


class MessagesHandler(_CompletionBase):
    """POST /v1/messages in the Anthropic format."""

    anthropic = True

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        return anthropic_body(plan, model, n)

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        return anthropic_events(plan, model, n)

    def refusal(self, req: dict[str, Any]) -> str | None:
        """Anthropic's rule for thinking in a tool loop: the final assistant turn, when it
        calls tools, must open with its thinking (or redacted_thinking) block."""
        thinking = req.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
            return None
        messages = req.get("messages") if isinstance(req.get("messages"), list) else []
        for i in range(len(messages) - 1, -1, -1):
            turn = messages[i]
            if not isinstance(turn, dict) or turn.get("role") != "assistant":
                continue
            blocks = turn.get("content") if isinstance(turn.get("content"), list) else []
            kinds = [b.get("type") for b in blocks if isinstance(b, dict)]
            if "tool_use" in kinds and kinds[0] not in ("thinking", "redacted_thinking"):
                return (f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                        f"found `{kinds[0]}`. When `thinking` is enabled, a final `assistant` message "
                        "must start with a thinking block")
            return None
        return None

    def stream_error_event(self) -> bytes:
        return b"event: error\ndata: " + anthropic_error(529, "Overloaded") + b"\n\n"


class CountTokensHandler(ScriptedHandler):
    """POST /v1/messages/count_tokens (Anthropic): whitespace words of system and messages."""

    anthropic = True

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        words = len(orjson.dumps([req.get("system"), req.get("messages")]).split())
        await self.reply({"input_tokens": words}, b)
