"""A redaction pattern and what its regex may look at: the bounds a stream's hold-back needs.

A streamed answer can only be redacted without holding it whole when every match has a
known maximum length: then a text that arrived in pieces is settled up to that many
characters (plus what lookarounds peek at) before its end. `measure` computes those
bounds from the regex itself (Python's own parser), so a pattern that can match
unboundedly (`+`, `*`, `{n,}`) is refused when routes.yaml is compiled, not discovered
as a stream that never lets go of its text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import Any

MAX_WIDTH = 8192  # the longest match a pattern may have: a PEM key of RSA-4096 fits twice
MAX_LOOK = 64  # the widest lookaround: what a pattern may peek at around its match

_UNBOUNDED = sre.MAXREPEAT


@dataclass(frozen=True, slots=True)
class Bounds:
    """What a regex may read: its match is at most `width` characters; it peeks at most
    `ahead` characters past a match's end and `behind` before its start."""

    width: int
    ahead: int
    behind: int


@dataclass(frozen=True, slots=True)
class Pattern:
    """One kind of secret: its regex, bounds, and optional checks.

    `start`, when set, matches at every position where a match can begin, and also
    where only the beginning of one stands at the end of the text: a stream then holds
    back only from the first such position, not the whole width. `valid` tests a
    matched value (a checksum, the entropy floor); a value it rejects stays as it is.
    `run`, when set, is a character class (without its brackets) holding every character
    a match can consume: a position whose run of those has ended is settled early.
    `needles`, when set, are strings of which every match holds one, beginning between
    `around[0]` and `around[1]` characters after the match's start (negative: before it):
    a text is then searched for them (lower-cased when the regex ignores case) before any
    regex runs, which keeps the cost of the many patterns that rarely match low.
    A group named `secret` in the regex limits the replacement to that group (the value
    of `password=...`, not its name).
    """

    kind: str
    regex: re.Pattern[str]
    bounds: Bounds
    start: re.Pattern[str] | None = None
    valid: Callable[[str], bool] | None = None
    run: str | None = None
    needles: tuple[str, ...] = ()
    around: tuple[int, int] = (0, 0)
    shrink: int = 0  # shorter matches at the same start to try when `valid` rejects one
    # One character of the match's last part (a run): a match followed by another character
    # is final, for patterns whose earlier parts are short and cannot hold one (a keyword).
    tail: re.Pattern[str] | None = None
    # For patterns without needles whose matches hold no space: a regex found wherever one
    # is (a long enough token), for the fast paths. Patterns with neither needles nor a
    # gate are looked for with their `start` there.
    gate: str | None = None

    @property
    def holdback(self) -> int:
        """Characters before a text's end in which a match may still be unsettled."""
        return self.bounds.width + self.bounds.ahead


def pattern(
    kind: str, source: str, *, start: str | None = None, valid: Callable[[str], bool] | None = None,
    run: str | None = None, needles: tuple[str, ...] = (), around: tuple[int, int] = (0, 0), shrink: int = 0,
    tail: str | None = None, gate: str | None = None, flags: int = 0,
) -> Pattern:
    """A compiled Pattern; ValueError when its regex is malformed or unbounded."""
    try:
        regex = re.compile(source, flags)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    bounds = measure(source, flags)
    fold = bool(flags & re.IGNORECASE)
    return Pattern(kind, regex, bounds, re.compile(start, flags) if start is not None else None, valid, run,
                   tuple(n.lower() for n in needles) if fold else needles, around, shrink,
                   re.compile(f"[{tail}]", flags) if tail is not None else None, gate)


def measure(source: str, flags: int = 0) -> Bounds:
    """The Bounds of a regex; ValueError saying why there are none."""
    parsed = sre_parse.parse(source, flags)
    low, high = parsed.getwidth()
    if high >= _UNBOUNDED:
        raise ValueError("can match unboundedly (+, * or {n,} without an upper bound): "
                         "give every repetition a maximum, e.g. {1,64}")
    if low == 0:
        raise ValueError("can match the empty string")
    if high > MAX_WIDTH:
        raise ValueError(f"can match up to {high} characters; at most {MAX_WIDTH} are allowed")
    ahead, behind = _looks(parsed.data)
    if max(ahead, behind) > MAX_LOOK:
        raise ValueError(f"has a lookaround that can read more than {MAX_LOOK} characters")
    return Bounds(high, ahead, behind)


def _looks(items: Any) -> tuple[int, int]:
    """The widest lookahead and lookbehind in a parsed regex (a word boundary or `$` peeks
    at one character each way)."""
    ahead = behind = 0
    for op, av in items:
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            direction, sub = av
            width = sub.getwidth()[1]
            if width >= _UNBOUNDED:
                width = MAX_LOOK + 1
            inner_ahead, inner_behind = _looks(sub.data)
            if direction > 0:
                ahead = max(ahead, width + inner_ahead)
            else:
                behind = max(behind, width + inner_behind)
            continue
        if op is sre.AT:
            ahead, behind = max(ahead, 1), max(behind, 1)
            continue
        for sub in _children(av):
            inner_ahead, inner_behind = _looks(sub)
            ahead, behind = max(ahead, inner_ahead), max(behind, inner_behind)
    return ahead, behind


def _children(av: Any) -> list[Any]:
    """The parsed sub-patterns inside one node's argument."""
    if isinstance(av, sre_parse.SubPattern):
        return [av.data]
    if isinstance(av, list | tuple):
        return [found for item in av for found in _children(item)]
    return []


_CATEGORIES = MappingProxyType({
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_SPACE: r"\s", sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_NOT_SPACE: r"\S", sre.CATEGORY_NOT_WORD: r"\W"})


def first_chars(source: str, flags: int = 0) -> str | None:
    """A character class (without its brackets) holding every character a match of the
    regex can begin with; None when that is not simply known (a case-folding regex, a
    negated class, an optional first part). Lets a search skip to where a match could begin."""
    if flags & re.IGNORECASE:
        return None
    return _first(sre_parse.parse(source, flags).data)


def _first(items: Any) -> str | None:
    for op, av in items:
        if op in (sre.ASSERT, sre.ASSERT_NOT, sre.AT):
            continue  # zero width: the next item begins the match
        if op is sre.LITERAL:
            return re.escape(chr(av))
        if op is sre.IN:
            parts = []
            for kind, value in av:
                if kind is sre.LITERAL:
                    parts.append(re.escape(chr(value)))
                elif kind is sre.RANGE:
                    parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
                elif kind is sre.CATEGORY and value in _CATEGORIES:
                    parts.append(_CATEGORIES[value])
                else:
                    return None
            return "".join(parts)
        if op is sre.BRANCH:
            branches = [_first(branch.data) for branch in av[1]]
            return None if None in branches else "".join(branches)  # type: ignore[arg-type]
        if op is sre.SUBPATTERN:
            return _first(av[-1].data)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and av[0] >= 1:
            return _first(av[2].data)
        return None
    return None


def trie(words: Iterable[str]) -> dict[str, Any]:
    """`words` as a character trie: nested dicts by next character, "" marking where a word ends."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return root
