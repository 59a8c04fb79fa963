"""The names MCP tools are offered under: `<server>__<tool>`, as providers accept them.

OpenAI and Anthropic take tool names of `[A-Za-z0-9_-]`, at most 64 characters. Other
characters become `_`; a name that is still too long, or that two tools would share, is cut
and ends in `_` and a hash of the server and tool, so it stays the same from one listing (and
one process) to the next, and the prompt prefix with it.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

MAX_NAME = 64
SEPARATOR = "__"
_HASH = 8  # hex digits of the suffix
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def _hashed(plain: str, server: str, tool: str) -> str:
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:_HASH]
    return f"{plain[:MAX_NAME - _HASH - 1]}_{digest}"


def offered_names(tools: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Offered name → (server, tool) for `tools` given as (server, tool), keeping their order."""
    pairs = list(dict.fromkeys(tools))
    plain = [_NOT_ALLOWED.sub("_", f"{server}{SEPARATOR}{tool}") for server, tool in pairs]
    shared = Counter(plain)
    names: dict[str, tuple[str, str]] = {}
    for name, (server, tool) in zip(plain, pairs, strict=True):
        if len(name) > MAX_NAME or shared[name] > 1:
            name = _hashed(name, server, tool)
        if name in names:  # two hashes alike: leave the later tool out rather than confuse them
            continue
        names[name] = (server, tool)
    return names
