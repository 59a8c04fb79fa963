"""OpenAI Responses API on the wire: the ``response`` object and its SSE events, rendered from
the same plan as chat (so a test predicts one answer whatever the endpoint)."""

from __future__ import annotations

from typing import Any

import orjson

from mock_provider.behaviour import Behaviour
from mock_provider.plan import CREATED, Plan, make_plan


def _responses_messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat-style messages from ``instructions`` + ``input`` (string or item list)."""
    msgs: list[dict[str, Any]] = []
    instructions = req.get("instructions")
    if isinstance(instructions, str) and instructions:
        msgs.append({"role": "system", "content": instructions})
    inp = req.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, str):
                msgs.append({"role": "user", "content": item})
            elif isinstance(item, dict) and "role" in item:
                msgs.append({"role": item["role"], "content": item.get("content")})
            elif isinstance(item, dict) and item.get("type") == "function_call_output":
                msgs.append({"role": "tool", "content": item.get("output")})
    return msgs


def responses_plan(req: dict[str, Any], model: str, b: Behaviour) -> Plan:
    """The same deterministic plan as chat, from a Responses request."""
    return make_plan({"messages": _responses_messages(req), "tools": req.get("tools"),
                      "max_tokens": req.get("max_output_tokens")}, model, b, anthropic=False)


def _message_item(n: int, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [
        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": f"msg_mock{n}", "status": status, "role": "assistant",
            "content": content}


def _call_item(n: int, i: int, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_mock{n}_{i}", "call_id": f"call_mock{n}_{i}",
            "name": name, "arguments": arguments, "status": status}


def response_object(plan: Plan, model: str, n: int, req: dict[str, Any], done: bool) -> dict[str, Any]:
    """A ``response`` object: in progress (empty output) or final (output + usage)."""
    status = ("incomplete" if plan.truncated else "completed") if done else "in_progress"
    output: list[dict[str, Any]] = []
    usage = None
    if done:
        if plan.calls:
            output = [_call_item(n, i, name, args, "completed")
                      for i, (name, args, _) in enumerate(plan.calls)]
        else:
            output = [_message_item(n, status, plan.text)]
        ct = plan.completion_tokens
        usage = {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": ct, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": plan.prompt_tokens + ct}
    tools = req.get("tools")
    return {
        "id": f"resp_mock{n}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "completed_at": CREATED if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "metadata": req.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": req.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": req.get("store") is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
    }


def responses_events(plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
    """The Responses SSE sequence (``event:`` + ``data:`` with ``type`` and ``sequence_number``)."""
    events: list[bytes] = []

    def ev(etype: str, **payload: Any) -> None:
        data = orjson.dumps({"type": etype, "sequence_number": len(events), **payload})
        events.append(b"event: " + etype.encode() + b"\ndata: " + data + b"\n\n")

    pending = response_object(plan, model, n, req, done=False)
    ev("response.created", response=pending)
    ev("response.in_progress", response=pending)
    if plan.calls:
        for i, (name, args, frags) in enumerate(plan.calls):
            loc = {"item_id": f"fc_mock{n}_{i}", "output_index": i}
            ev("response.output_item.added", output_index=i,
               item=_call_item(n, i, name, "", "in_progress"))
            for f in frags:
                ev("response.function_call_arguments.delta", **loc, delta=f)
            ev("response.function_call_arguments.done", **loc, name=name, arguments=args)
            ev("response.output_item.done", output_index=i,
               item=_call_item(n, i, name, args, "completed"))
    else:
        loc = {"item_id": f"msg_mock{n}", "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        ev("response.output_item.added", output_index=0, item=_message_item(n, "in_progress", None))
        ev("response.content_part.added", **loc, part=part)
        for w in plan.words:
            ev("response.output_text.delta", **loc, delta=w, logprobs=[])
        ev("response.output_text.done", **loc, text=plan.text, logprobs=[])
        ev("response.content_part.done", **loc, part={**part, "text": plan.text})
        ev("response.output_item.done", output_index=0,
           item=_message_item(n, "incomplete" if plan.truncated else "completed", plan.text))
    final = response_object(plan, model, n, req, done=True)
    ev("response.incomplete" if plan.truncated else "response.completed", response=final)
    return events
