"""Buffered (non-streaming) chat answers between Anthropic Messages and OpenAI chat completions.

The answer names the model the client asked for (ctx.model), not the provider's.
Both directions keep the content order a stream would give: thinking, text, tool calls.
Anthropic's signed thinking blocks also reach OpenAI clients whole, as the message's
`thinking_blocks`, so that a tool loop can send them back (see chat_requests).
An answer that is not a JSON object, or that cannot be re-encoded, raises ValueError.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson

from converters.base import Context
from converters.chat_mapping import (
    anthropic_tool_id,
    anthropic_usage,
    cache_writes,
    finish_reason,
    openai_reasoning,
    openai_usage,
    openai_usage_json,
    parse_arguments,
    stop_reason,
)
from converters.encoding import encode
from converters.usage import Usage, usage_from_anthropic, usage_from_openai


def anthropic_to_openai_response(doc: dict[str, Any], ctx: Context, usage: Usage | None = None,
                                  created: int | None = None) -> dict[str, Any]:
    """A `chat.completion` for an Anthropic `message`; `created` defaults to now (Anthropic has none).
    `usage`: the answer's usage when the caller has read it already (usage_from_anthropic)."""
    if not isinstance(doc, dict):
        raise ValueError("the Anthropic answer is not a JSON object")
    texts: list[str] = []
    thinking: list[str] = []
    signed: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in doc.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            signature = block.get("signature") or ""
            signed.append({"type": "thinking", "thinking": thinking[-1], "signature": signature})
        elif kind == "redacted_thinking":
            signed.append({"type": "redacted_thinking", "data": block.get("data") or ""})
        elif kind == "tool_use":
            calls.append({
                "id": block.get("id") or f"toolu_{len(calls)}",
                "type": "function",
                "function": {"name": block.get("name") or "",
                             "arguments": encode(block.get("input") or {}, "a tool call's input").decode()},
            })
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if signed:
        message["thinking_blocks"] = signed
    if calls:
        message["tool_calls"] = calls
    if usage is None:
        usage = usage_from_anthropic(doc)
    return {
        "id": doc.get("id") or "chatcmpl-unknown",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(doc.get("stop_reason"))}],
        "usage": openai_usage(usage),
    }


def anthropic_to_openai_body(doc: Any, ctx: Context, usage: Usage, created: int | None = None) -> bytes:
    """anthropic_to_openai_response, encoded. The usual answer, one text block, is written
    straight into its bytes (no answer document to make and encode whole): its id and text
    are encoded alone, as the whole document's encoding would have them."""
    content = doc.get("content") if type(doc) is dict else None
    block = content[0] if type(content) is list and len(content) == 1 else None
    if type(block) is dict and block.get("type") == "text":
        text, answer_id = block.get("text") or "", doc.get("id") or "chatcmpl-unknown"
        if type(text) is str and type(answer_id) is str:
            try:
                return _TEXT_ANSWER % (
                    orjson.dumps(answer_id), int(time.time()) if created is None else created,
                    orjson.dumps(ctx.model), orjson.dumps(text),
                    finish_reason(doc.get("stop_reason")).encode(), openai_usage_json(usage))
            except orjson.JSONEncodeError:  # text not UTF-8 (a lone surrogate): as the general way fails
                pass
    return encode(anthropic_to_openai_response(doc, ctx, usage, created), "the answer")


_TEXT_ANSWER = (b'{"id":%b,"object":"chat.completion","created":%d,"model":%b,"choices":[{"index":0,'
                b'"message":{"role":"assistant","content":%b},"logprobs":null,"finish_reason":"%b"}],"usage":%b}')


def openai_to_anthropic_body(doc: Any, ctx: Context, usage: Usage) -> bytes:
    """openai_to_anthropic_response, encoded."""
    return encode(openai_to_anthropic_response(doc, ctx, usage), "the answer")


def openai_to_anthropic_response(
    doc: dict[str, Any], ctx: Context, usage: Usage | None = None
) -> dict[str, Any]:
    """An Anthropic `message` for a `chat.completion` (its first choice). `usage`: the answer's
    usage when the caller has read it already (usage_from_openai).

    Thinking blocks carry an empty signature: an OpenAI provider issues none.
    A refusal is given as text, with stop_reason "refusal".
    """
    if not isinstance(doc, dict):
        raise ValueError("the OpenAI answer is not a JSON object")
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = openai_reasoning(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(part.get("text") or "" for part in text if isinstance(part, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append({
            "type": "tool_use",
            "id": anthropic_tool_id(call.get("id") or f"toolu_{doc.get('id') or 'unknown'}_{i}"),
            "name": function.get("name") or "",
            "input": parse_arguments(function.get("arguments")),
        })
    # A copy: the answer also gives the cache writes, which the caller's (metering) leaves out.
    usage = usage_from_openai(doc) if usage is None else replace(usage)
    if isinstance(doc.get("usage"), dict):
        usage.cache_write = cache_writes(doc["usage"])
    has_calls = any(block["type"] == "tool_use" for block in content)
    if isinstance(refusal, str) and refusal:
        reason, sequence = "refusal", None
    else:
        reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"),
                                       ctx.client_request, has_calls)
    return {
        "id": doc.get("id") or "msg_unknown",
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(usage),
    }
