"""Tokens a request will cost, guessed before it is sent (no tokenizer is downloaded).

The guess, for OpenAI and Anthropic request shapes alike:
- text: one token per 4 characters (rounded up) of every string the model reads: message
  contents, system prompts, tool calls (names and arguments), tool results;
- each message: 4 tokens of framing, and 3 more for the answer's priming;
- each image: 85 tokens at OpenAI's `detail: low`, 765 otherwise (a 1024×1024 image at high
  detail); 1600 for an Anthropic image or document and an OpenAI file (about a full-size
  image; a long PDF costs more, and its usage corrects the count afterwards);
- tool definitions and structured-output schemas: their JSON, one token per 4 characters;
- the output reserve: the request's max_completion_tokens or max_tokens, at most
  `output_reserve` (routes.yaml limits.output_reserve), and `output_reserve` when it sets none.
tpm limits count this much until the answer's usage corrects it (limits/limiter.py), so the
guess only decides how close to a limit a burst of requests may get, never the final count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 4
PRIMING_TOKENS = 3
IMAGE_LOW_TOKENS = 85
IMAGE_TOKENS = 765
DOCUMENT_TOKENS = 1600

_IMAGE_TYPES = frozenset({"image_url", "input_image"})
_DOCUMENTS = frozenset({"image", "document", "file", "input_file"})  # Anthropic media, OpenAI files
# Keys whose string values the model does not read as text (ids, roles, base64 payloads...).
_NOT_TEXT = frozenset({"type", "role", "id", "tool_call_id", "tool_use_id", "source", "cache_control",
                       "detail", "signature", "data", "file_id", "file_data", "format", "url", "image_url"})
_JSON_VALUED = frozenset({"input", "arguments", "parameters", "input_schema", "schema"})
_MAX_DEPTH = 32


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """The estimated prompt of a chat request (OpenAI chat completions or Anthropic messages)."""
    characters, tokens = _read(body.get("system"), 0)
    tokens += PRIMING_TOKENS
    for schema in (body.get("tools"), body.get("functions"), body.get("response_format")):
        if schema:
            characters += _json_length(schema)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            more_chars, more_tokens = _read(message, 0)
            characters += more_chars
            tokens += MESSAGE_TOKENS + more_tokens
    return tokens + math.ceil(characters / CHARS_PER_TOKEN)


def output_tokens(body: Mapping[str, Any], output_reserve: int) -> int:
    """Output tokens to reserve: what the request allows, at most `output_reserve`."""
    asked = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(asked, output_reserve)
    return output_reserve


def request_tokens(body: Mapping[str, Any], output_reserve: int) -> int:
    """Prompt estimate and output reserve: what a request counts against tpm until its usage is known."""
    return prompt_tokens(body) + output_tokens(body, output_reserve)


def _read(value: Any, depth: int) -> tuple[int, int]:
    """(characters of text, tokens of media) in one message, content part or system prompt.

    Past _MAX_DEPTH levels nothing more is counted: no chat request nests that deep."""
    if depth > _MAX_DEPTH:
        return 0, 0
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        characters = tokens = 0
        for item in value:
            more_chars, more_tokens = _read(item, depth + 1)
            characters += more_chars
            tokens += more_tokens
        return characters, tokens
    if not isinstance(value, dict):
        return 0, 0
    kind = value.get("type")
    if kind in _IMAGE_TYPES:
        image = value.get("image_url")
        detail = image.get("detail") if isinstance(image, dict) else value.get("detail")
        return 0, IMAGE_LOW_TOKENS if detail == "low" else IMAGE_TOKENS
    if kind in _DOCUMENTS:
        return 0, DOCUMENT_TOKENS
    characters = tokens = 0
    for key, item in value.items():
        if key in _NOT_TEXT:
            continue
        if key in _JSON_VALUED and not isinstance(item, str):
            characters += _json_length(item)
            continue
        more_chars, more_tokens = _read(item, depth + 1)
        characters += more_chars
        tokens += more_tokens
    return characters, tokens


def _json_length(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # nested past orjson's limit: count nothing rather than fail
        return 0
