"""A tool call's outcome in the words a model reads: text, and whether it is an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from converters.chat_requests import TOOL_ERROR_PREFIX


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What goes back to the model as the tool message (OpenAI `role: tool`, Anthropic
    `tool_result` with `is_error`)."""

    text: str
    is_error: bool = False
    outcome: str = "ok"  # for the metrics: ok, error (the tool said so), timeout, failed, unknown

    def openai_message(self, call_id: str) -> dict[str, Any]:
        """The `role: tool` message answering OpenAI tool call `call_id`. OpenAI has no error
        flag: an error's text starts with the prefix the converters read back as `is_error`."""
        text = TOOL_ERROR_PREFIX + self.text if self.is_error else self.text
        return {"role": "tool", "tool_call_id": call_id, "content": text}

    def anthropic_block(self, tool_use_id: str) -> dict[str, Any]:
        """The `tool_result` block (of the next user turn) answering Anthropic `tool_use_id`."""
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.text}
        if self.is_error:
            block["is_error"] = True
        return block


def _part(block: Any) -> str:
    """One content block: its text; other kinds named, since the model cannot read them here."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return text
        return f"[resource {resource.uri} ({resource.mime_type or 'binary'})]"
    if kind == "resource_link":
        return f"[resource link {block.uri}]"
    mime = getattr(block, "mime_type", None)
    return f"[{kind or 'content'}{f' {mime}' if mime else ''} omitted]"


def from_call(result: Any, max_chars: int) -> ToolResult:
    """A CallToolResult as the model reads it: the text parts joined, else the structured
    content as JSON; cut at `max_chars` with a note saying so."""
    text = "\n".join(_part(block) for block in result.content or ())
    if not text and result.structured_content is not None:
        text = orjson.dumps(result.structured_content).decode()
    return ToolResult(cap(text, max_chars), bool(result.is_error), "error" if result.is_error else "ok")


def failure(text: str, outcome: str) -> ToolResult:
    """A call that did not complete (timeout, connection lost, unknown tool), as an error result."""
    return ToolResult(text, True, outcome)


def cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    note = f"\n[result cut: {len(text)} characters, only the first {max_chars} shown]"
    return text[:max_chars] + note


def arguments_of(raw: Any) -> dict[str, Any] | str:
    """A model's call arguments as an object: Anthropic's `input`, or OpenAI's JSON text; else why not."""
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return "the arguments are not valid JSON"
    return raw if isinstance(raw, dict) else "the arguments must be a JSON object"
