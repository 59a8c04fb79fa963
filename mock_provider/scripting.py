"""Per-model fault scripts set through ``/_mock/faults``, and how many requests each model got.

Model-name selectors (``behaviour.py``) fix a behaviour for ever; a breaker or retry test needs
the same model to fail a few times and then recover, without renaming it or sleeping. A script
says what the next requests for one model meet: an error status, a delayed first byte, or a
closed connection, for a number of requests or until cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SEEN_LIMIT = 10_000  # distinct model names counted (the names are the client's to choose)
SCRIPT_LIMIT = 1_000  # models with a script at once
MAX_DELAY_MS = 600_000
_KINDS = ("fail", "first_byte_delay_ms", "refuse", "stream", "tool_calls", "recover")
# What a scripted stream does: after its first event, an error event or nothing ("error",
# "empty"); or its content without the events that end it, then silence ("stall").
STREAM_FAULTS = ("error", "empty", "stall")
# What a tool_calls script does when the last message is a tool result: quote it, call again, or
# fail (503: a model that breaks on the round after its tools ran).
AFTER_RESULT = ("quote", "call", "fail")
MAX_CALLS = 16  # tool calls in one scripted answer
_KEYS = frozenset({"model", "status", "retry_after", "times", "after_result", "say", *_KINDS})
MAX_SAY = 1024  # characters of the text a calling answer opens with


@dataclass(slots=True)
class FaultScript:
    """What the next ``remaining`` requests (None: every one until cleared) for a model meet."""

    kind: str  # "fail", "delay", "refuse", "stream" or "tool_calls"
    remaining: int | None
    status: int = 503
    retry_after: str | None = None
    delay_ms: float = 0.0
    stream: str = ""  # "error", "empty" or "stall"
    calls: tuple[tuple[str, str], ...] = ()  # tool_calls: (name, arguments JSON)
    after_result: str = "quote"  # tool_calls: "quote" the tool result, "call" again, or "fail"
    say: str = ""  # tool_calls: the text the calling answer opens with

    def view(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"kind": self.kind, "remaining": self.remaining}
        if self.kind == "fail":
            shown.update(status=self.status, retry_after=self.retry_after)
        elif self.kind == "delay":
            shown["first_byte_delay_ms"] = self.delay_ms
        elif self.kind == "stream":
            shown["stream"] = self.stream
        elif self.kind == "tool_calls":
            shown["tool_calls"] = [{"name": n, "arguments": orjson.loads(args)} for n, args in self.calls]
            shown["after_result"] = self.after_result
            if self.say:
                shown["say"] = self.say
        return shown


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def parse_script(spec: Any) -> tuple[str, FaultScript | None] | str:
    """``(model, script)`` from a POST body (script None: recover), or why the body is wrong.

    ``{"model", "fail": N | true, "status": 400..599 (503), "retry_after": "<secs or HTTP date>"}``,
    ``{"model", "first_byte_delay_ms": ms, "times": N}``, ``{"model", "refuse": true, "times": N}``
    ``{"model", "stream": "error" | "empty" | "stall", "times": N}`` (a streamed completion
    answers 200, sends its first event, then an error event or nothing; or, "stall", every
    event but those that end it, then nothing until the client goes away),
    ``{"model", "tool_calls": [{"name", "arguments": {...}}, ...], "after_result": "quote" | "call" |
    "fail", "say": "<text the calling answer opens with>", "times": N}`` (a chat answer calls
    these tools; see ``plan.scripted_plan``) or
    ``{"model", "recover": true}``; without ``times`` (or with ``fail: true``) until cleared.
    """
    if not isinstance(spec, dict) or set(spec) - _KEYS:
        return f"expected an object with keys among {sorted(_KEYS)}"
    model = spec.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        return "model must be a non-empty string of at most 256 characters"
    kinds = [k for k in _KINDS if k in spec]
    if len(kinds) != 1:
        return "give exactly one of fail, first_byte_delay_ms, refuse, stream, recover"
    kind = kinds[0]
    times = spec.get("times")
    if times is not None and (kind in ("fail", "recover") or not _count(times)):
        return "times (an integer >= 1) goes with first_byte_delay_ms, refuse, stream or tool_calls"
    if ("after_result" in spec or "say" in spec) and kind != "tool_calls":
        return "after_result and say go with tool_calls"
    if kind != "fail" and ("status" in spec or "retry_after" in spec):
        return "status and retry_after go with fail"
    if kind == "recover":
        return (model, None) if spec["recover"] is True else "recover must be true"
    if kind == "refuse":
        return (model, FaultScript("refuse", times)) if spec["refuse"] is True else "refuse must be true"
    if kind == "stream":
        if spec["stream"] not in STREAM_FAULTS:
            return f"stream must be one of {list(STREAM_FAULTS)}"
        return model, FaultScript("stream", times, stream=spec["stream"])
    if kind == "tool_calls":
        return _tool_calls(model, spec, times)
    if kind == "first_byte_delay_ms":
        ms = spec["first_byte_delay_ms"]
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= MAX_DELAY_MS:
            return f"first_byte_delay_ms must be a number from 0 to {MAX_DELAY_MS}"
        return model, FaultScript("delay", times, delay_ms=float(ms))
    fail = spec["fail"]
    if fail is not True and not _count(fail):
        return "fail must be a count >= 1 or true (until cleared)"
    status = spec.get("status", 503)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        return "status must be an integer from 400 to 599"
    retry_after = spec.get("retry_after")
    if isinstance(retry_after, int) and not isinstance(retry_after, bool) and retry_after >= 0:
        retry_after = str(retry_after)
    if retry_after is not None and not (
        isinstance(retry_after, str) and 0 < len(retry_after) <= 64
        and retry_after.isascii() and retry_after.isprintable()
    ):
        return "retry_after must be seconds or an HTTP date (printable ASCII, at most 64 characters)"
    return model, FaultScript("fail", None if fail is True else fail, status, retry_after)


def _tool_calls(model: str, spec: dict[str, Any], times: int | None) -> tuple[str, FaultScript] | str:
    calls = spec["tool_calls"]
    if not isinstance(calls, list) or not 1 <= len(calls) <= MAX_CALLS or not all(
        isinstance(c, dict) and set(c) <= {"name", "arguments"} and isinstance(c.get("name"), str)
        and 0 < len(c["name"]) <= 128 and isinstance(c.get("arguments", {}), dict) for c in calls
    ):
        return f"tool_calls must be a list of 1 to {MAX_CALLS} {{name, arguments: {{...}}}}"
    after = spec.get("after_result", "quote")
    if after not in AFTER_RESULT:
        return f"after_result must be one of {list(AFTER_RESULT)}"
    say = spec.get("say", "")
    if not isinstance(say, str) or len(say) > MAX_SAY:
        return f"say must be a string of at most {MAX_SAY} characters"
    scripted = tuple((c["name"], orjson.dumps(c.get("arguments", {})).decode()) for c in calls)
    return model, FaultScript("tool_calls", times, calls=scripted, after_result=after, say=say)


class FaultBook:
    """The scripts by model, and how many requests each model has been sent."""

    def __init__(self) -> None:
        self.scripts: dict[str, FaultScript] = {}
        self.seen: dict[str, int] = {}

    def take(self, model: str, spend: bool = True) -> FaultScript | None:
        """Count a request for ``model``; the script it meets (one use spent, unless not
        ``spend``), if any."""
        if model in self.seen:
            self.seen[model] += 1
        elif len(self.seen) < SEEN_LIMIT:
            self.seen[model] = 1
        script = self.scripts.get(model)
        if script is None:
            return None
        if script.remaining is not None and spend:
            script.remaining -= 1
            if script.remaining <= 0:
                del self.scripts[model]
        return script

    def put(self, model: str, script: FaultScript | None) -> bool:
        """Replace the model's script (None: recover); False when too many models have one."""
        if script is None:
            self.scripts.pop(model, None)
        elif model in self.scripts or len(self.scripts) < SCRIPT_LIMIT:
            self.scripts[model] = script
        else:
            return False
        return True

    def clear(self) -> None:
        self.scripts.clear()
        self.seen.clear()

    def view(self) -> dict[str, Any]:
        return {"scripts": {m: s.view() for m, s in self.scripts.items()}, "seen": dict(self.seen)}
