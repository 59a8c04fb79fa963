"""Model-name selectors: how a test scripts the mock's behaviour.

The gateway rewrites model names, so a test chooses what the upstream does by routing to a
model whose name carries ``-``-separated tokens (``gpt-delay-50-tools``, ``x-fault-429``);
``mock_provider/__init__.py`` lists them. This module only reads them; ``faults.py`` plays them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

_NAMED_FAULTS = frozenset({"hang", "cut", "cutend", "empty", "slowheaders", "streamerror"})
# The largest ``big-<KiB>`` reply (512 MiB: bench/slow_readers' largest); a larger one is ignored,
# as any selector out of range is, rather than making the mock run out of memory.
MAX_BIG_KIB = 512 * 1024


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the model name asks the mock to do (parsed once per distinct name)."""

    delay_ms: float | None = None
    tools: bool = False
    thinking: bool = False
    fault: str | None = None  # "429", "500", ..., "hang", "cut", "cutend", "empty", "streamerror"
    slow_headers: bool = False
    echo_key: bool = False  # a fault's message quotes the credential the request presented
    big_kib: int | None = None  # reply text of this many KiB of filler_text
    piece_kib: int = 16  # ... in pieces (stream events) of this many KiB
    lead_bytes: bool = False  # ... after two first pieces of one character each
    cache: bool = False  # a prompt cache: usage reports the tokens of a prefix seen before as cached
    echo_system: bool = False  # the reply (or the tool calls' arguments) quotes the system prompt
    bad_usage: bool = False  # usage counts that no provider should send (negative, text, huge)

    @property
    def fault_status(self) -> int | None:
        """The HTTP status a ``fault-<status>`` asks for, else None."""
        return int(self.fault) if self.fault is not None and self.fault.isdigit() else None


@functools.lru_cache(maxsize=4096)
def parse_model(model: str) -> Behaviour:
    """Read the behaviour selectors out of a model name like ``gpt-delay-50-tools``.

    Cached: the benchmark sends the same few names millions of times.
    """
    tokens = model.lower().split("-")
    delay: float | None = None
    fault: str | None = None
    big: int | None = None
    piece = 16
    tools = thinking = slow = echo = cache = echo_system = bad_usage = lead = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "big" and nxt.isdigit() and int(nxt) <= MAX_BIG_KIB:
            big = int(nxt)
        elif tok == "piece" and nxt.isdigit() and int(nxt) > 0:
            piece = int(nxt)
        elif tok == "leadbytes":
            lead = True
        elif tok == "tools":
            tools = True
        elif tok == "thinking":
            thinking = True
        elif tok == "echokey":
            echo = True
        elif tok == "cache":
            cache = True
        elif tok == "echosystem":
            echo_system = True
        elif tok == "badusage":
            bad_usage = True
        elif tok == "delay" and delay is None and nxt.isdigit():
            delay = float(nxt)
        elif tok == "fault":
            if nxt == "slowheaders":
                slow = True
            elif fault is None and (
                nxt in _NAMED_FAULTS or (nxt.isdigit() and 400 <= int(nxt) <= 599)
            ):
                fault = nxt
    return Behaviour(delay, tools, thinking, fault, slow, echo, big, piece, lead, cache, echo_system,
                     bad_usage)
