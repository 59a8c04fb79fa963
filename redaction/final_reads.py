"""The texts of a read that ends a stream, taken in one go.

When a stream's last read (`[DONE]`, Anthropic's `message_stop`) comes while no field
holds anything back (a short answer, or a fast upstream that sends it whole), every
field's whole text is known at once. If the scanner finds nothing in them that could
begin a match (`Scanner.clean`), the read goes out as it came and no event need be
looked at one by one (redaction/answers.py does that otherwise).

Events are parsed with orjson, which here costs less than checking their shape with a
regex. Only what the event-by-event path redacts is gathered, by the same field keys;
an event it would change or that this cannot be sure of (logprobs, thinking blocks,
text in a block's start or a message's, an event that is not JSON) gives None, and the
event-by-event path takes the read.
"""

from __future__ import annotations

from typing import Any

import orjson

from redaction.text_deltas import ANTHROPIC_TEXT_DELTAS, OPENAI_TEXT_FIELDS

_OPENAI_END = b"\n\ndata: [DONE]\n\n"


def final_texts(framed: bytes, anthropic: bool) -> list[str] | None:
    """Each field's text in `framed` (whole events, `\\n` line ends) when it is a stream's
    last read and holds nothing but plain text pieces; else None."""
    try:
        return _anthropic(framed) if anthropic else _openai(framed)
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError, ValueError):
        return None  # not the shape this expects: the event-by-event path will say


def _openai(framed: bytes) -> list[str] | None:
    if not framed.endswith(_OPENAI_END) or not framed.startswith(b"data: "):
        return None
    body = framed[6 : -len(_OPENAI_END)]
    if body.count(b"\n") != 2 * body.count(b"\n\ndata: "):
        return None  # an event of more than one line, or of another field than data
    texts: dict[tuple[Any, ...], list[str]] = {}
    for raw in body.split(b"\n\ndata: "):
        for choice in orjson.loads(raw).get("choices") or ():
            if choice.get("logprobs") is not None:
                return None
            delta = choice.get("delta")
            if not delta:
                continue
            for name, value in delta.items():
                if not value:
                    continue
                if name in OPENAI_TEXT_FIELDS:
                    texts.setdefault((choice.get("index", 0), name), []).append(value)
                elif name == "tool_calls":
                    for call in value:
                        text = call["function"].get("arguments") if call.get("function") else None
                        if text:
                            key = (choice.get("index", 0), "tool", call.get("index", 0))
                            texts.setdefault(key, []).append(text)
                elif name == "thinking_blocks":
                    return None
    return ["".join(pieces) for pieces in texts.values()]  # TypeError if a piece is not text


def _anthropic(framed: bytes) -> list[str] | None:
    if not framed.endswith(b'"message_stop"}\n\n'):
        return None
    raws = framed.split(b"\n\n")
    if raws.pop():
        return None
    texts: dict[tuple[Any, ...], list[str]] = {}
    kind = None
    for raw in raws:
        data = raw[raw.index(b"data:") + 5 :]
        if data.find(b"\n") >= 0:  # (bytes `in` tries the needle as an int first, and raises)
            return None
        event = orjson.loads(data)
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            name = ANTHROPIC_TEXT_DELTAS.get(delta["type"])
            if name is not None and delta[name]:
                texts.setdefault((event.get("index", 0), delta["type"]), []).append(delta[name])
        elif kind == "content_block_start":
            block = event["content_block"]
            if block.get("text") or block.get("thinking") or block.get("input"):
                return None
        elif kind == "message_start" and event["message"].get("content"):
            return None
    return ["".join(pieces) for pieces in texts.values()] if kind == "message_stop" else None
