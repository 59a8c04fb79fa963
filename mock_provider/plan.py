"""The deterministic answer to a chat request, before any wire format.

Every completion endpoint (OpenAI chat, Anthropic messages, OpenAI responses) renders the same
``Plan``, so a test can predict the text, tool calls and token counts whatever the format.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from mock_provider.behaviour import Behaviour

DEFAULT_TOOL_NAMES: tuple[str, str] = ("get_weather", "get_time")
TOOL_ARGUMENTS: tuple[dict[str, str], dict[str, str]] = ({"city": "Paris"}, {"tz": "UTC"})
THINKING_TEXT = "The user wants a reply. I will greet them and echo their words."
THINKING_SIGNATURE = "bW9jay1zaWduYXR1cmU="
CREATED = 1_700_000_000  # the "created" time of every object the mock makes

# Words with their leading whitespace, so "".join(chunks) == reply text exactly.
_WORD_RE = re.compile(r"\s*\S+")


def text_of(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list joined by spaces."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif part.get("type") == "tool_result":
                parts.append(text_of(part.get("content")))
    return " ".join(p for p in parts if p)


@dataclass(slots=True)
class Plan:
    """The whole deterministic answer to one request, independent of wire format."""

    prompt_tokens: int
    words: list[str]  # text chunks, each with its leading whitespace
    truncated: bool
    calls: list[tuple[str, str, list[str]]]  # (tool name, arguments JSON, fragments)
    thinking: list[str]
    cached_tokens: int = 0  # of prompt_tokens, read from the prompt cache (the ``cache`` selector)
    bad_usage: bool = False  # usage counts no provider should send (the ``badusage`` selector)

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def completion_tokens(self) -> int:
        """One token per content-carrying chunk (text, thinking, argument fragment)."""
        return len(self.words) + len(self.thinking) + sum(len(c[2]) for c in self.calls)


def _tool_names(tools: Any) -> list[str]:
    """Names from OpenAI ``tools[].function.name`` or Anthropic ``tools[].name``."""
    names: list[str] = []
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
            if isinstance(name, str) and name:
                names.append(name)
    return names or list(DEFAULT_TOOL_NAMES)


def _split3(s: str) -> list[str]:
    """Split a string into three non-empty fragments (for strings of 3+ chars)."""
    a, b = len(s) // 3, 2 * len(s) // 3
    return [s[:a], s[a:b], s[b:]]


def filler_text(size: int) -> str:
    """``size`` characters of hex text for ``big-<KiB>`` replies: cheap to make, and any piece
    lost, repeated or reordered on the way shows. Public so a test can check what it got."""
    return hashlib.shake_256(b"mock filler").hexdigest((size + 1) // 2)[:size]


def prompt_prefixes(req: dict[str, Any], model: str, anthropic: bool) -> list[tuple[bytes, int]]:
    """(digest, prompt tokens) of each prefix of the prompt, shortest first: the model, the
    system prompt and the first 1, 2, ... messages, as a provider's prompt cache keys them."""
    digest = hashlib.blake2b(orjson.dumps([model, req.get("system") if anthropic else None]))
    tokens = len(text_of(req.get("system")).split()) if anthropic else 0
    prefixes = []
    messages = req.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        digest.update(orjson.dumps(msg))
        tokens += len(text_of(msg.get("content")).split()) if isinstance(msg, dict) else 0
        prefixes.append((digest.copy().digest(), tokens))
    return prefixes


def make_plan(req: dict[str, Any], model: str, b: Behaviour, anthropic: bool) -> Plan:
    """Compute reply words / tool calls / token counts for a parsed request body."""
    messages = req.get("messages")
    if not isinstance(messages, list):
        messages = []
    prompt_words = len(text_of(req.get("system")).split()) if anthropic else 0
    last_user = ""
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        text = text_of(msg.get("content"))
        prompt_words += len(text.split())
        if msg.get("role") == "user":
            last_user = text
    thinking = _WORD_RE.findall(THINKING_TEXT) if (b.thinking and anthropic) else []
    if b.echo_system:
        last_user = _system_text(req, anthropic)
    if b.tools:
        names = _tool_names(req.get("tools"))
        calls = []
        arguments = ({"note": last_user},) if b.echo_system else TOOL_ARGUMENTS
        for i, args in enumerate(arguments):
            js = orjson.dumps(args).decode()
            calls.append((names[i % len(names)], js, _split3(js)))
        return Plan(prompt_words, [], False, calls, thinking)
    if b.big_kib is not None:
        text, piece = filler_text(b.big_kib * 1024), b.piece_kib * 1024
        lead = 2 if b.lead_bytes else 0
        pieces = list(text[:lead]) + [text[i:i + piece] for i in range(lead, len(text), piece)]
        return Plan(prompt_words, pieces, False, [], thinking)
    schema = _output_schema(req, anthropic)
    reply = f"Hello from mock {model}! You said: {last_user}" if schema is None else (
        orjson.dumps(schema_instance(schema), option=orjson.OPT_INDENT_2).decode())
    words = _WORD_RE.findall(reply)
    limit = req.get("max_tokens")
    if limit is None and not anthropic:
        limit = req.get("max_completion_tokens")
    truncated = (
        isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words)
    )
    if truncated:
        words = words[:limit]
    return Plan(prompt_words, words, truncated, [], thinking)


def _system_text(req: dict[str, Any], anthropic: bool) -> str:
    """The system prompt: Anthropic's ``system``, or OpenAI's system and developer messages."""
    if anthropic:
        return text_of(req.get("system"))
    messages = req.get("messages") if isinstance(req.get("messages"), list) else []
    return " ".join(text_of(m.get("content")) for m in messages
                    if isinstance(m, dict) and m.get("role") in ("system", "developer"))


def _output_schema(req: dict[str, Any], anthropic: bool) -> dict[str, Any] | None:
    """The JSON schema a structured-output request asks the answer to follow, if any:
    Anthropic's ``output_config.format``, OpenAI's ``response_format`` json_schema."""
    if anthropic:
        config = req.get("output_config")
        spec = config.get("format") if isinstance(config, dict) else None
    else:
        fmt = req.get("response_format")
        spec = fmt.get("json_schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def schema_instance(schema: Any) -> Any:
    """A small value valid under ``schema`` (the subset structured outputs allow, local
    ``$ref`` aside): the first enum/const/alternative, required properties only."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_instance(schema[key][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else list(properties)
        return {name: schema_instance(properties.get(name)) for name in required if isinstance(name, str)}
    return {"array": [], "string": "mock", "integer": 0, "number": 0, "boolean": False}.get(kind)


def tool_results(req: dict[str, Any], anthropic: bool) -> list[str] | None:
    """The texts of the tool results the request ends with (OpenAI trailing ``tool`` messages,
    Anthropic ``tool_result`` blocks of the last user turn); None when it ends otherwise."""
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    if anthropic:
        content = messages[-1].get("content")
        blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] if (
            messages[-1].get("role") == "user" and isinstance(content, list)) else []
        return [text_of(b.get("content")) for b in blocks] or None
    trailing: list[str] = []
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") != "tool":
            break
        trailing.insert(0, text_of(msg.get("content")))
    return trailing or None


def tools_off(req: dict[str, Any]) -> bool:
    """Whether the request leaves the model no tool to call: none given, or tool_choice none."""
    choice = req.get("tool_choice")
    return not req.get("tools") or choice == "none" or (
        isinstance(choice, dict) and choice.get("type") == "none")


def calls_now(req: dict[str, Any], after_result: str, anthropic: bool) -> bool:
    """Whether a ``tool_calls`` script answers this request with its calls."""
    return not tools_off(req) and (after_result == "call" or tool_results(req, anthropic) is None)


def scripted_plan(
    req: dict[str, Any], model: str, b: Behaviour, anthropic: bool,
    calls: tuple[tuple[str, str], ...], after_result: str, say: str = "",
) -> Plan:
    """A ``tool_calls`` script's answer: the scripted calls (after the text ``say``); or, when the
    request ends with tool results (or allows no tool), text quoting them, ``Tool result: <text>``."""
    plan = make_plan(req, model, b, anthropic)
    if calls_now(req, after_result, anthropic):
        scripted = [(name, args, _split3(args)) for name, args in calls]
        return Plan(plan.prompt_tokens, _WORD_RE.findall(say), False, scripted, [])
    results = tool_results(req, anthropic)
    if results is None:
        return plan
    return Plan(plan.prompt_tokens, _WORD_RE.findall("Tool result: " + " | ".join(results)), False, [], [])
