"""Applying a policy's patterns: to a whole text, or to one that arrives in pieces.

Both go through `Redacting`, which settles a text from its start: a position is
settled once no text still to come can change whether a match begins there, that is,
when the text reaches past the longest possible match from it (the pattern's width
plus what its lookarounds peek at), or when the run of characters the pattern can
consume that starts there has already ended. A pattern's `start` regex skips, in the
unsettled tail, to the first place a match could begin at all. Matches that begin in
the settled part are final and replaced; the unsettled tail is held back. For prose,
that tail is the last word or so, never more than the longest match; for a whole text
everything is settled at once, so a streamed text comes out exactly as a whole one.

Overlapping matches of different patterns: the one starting first wins, then the
longer one. The replacement is a label `[REDACTED:kind:xxxxxxxx]`, its suffix a keyed
hash (HMAC-SHA256) of the value, so the same secret always reads the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from redaction.patterns import Pattern, first_chars, trie

_WORD = 64  # the longest last word the fast path holds back
_FOLD = int(re.IGNORECASE)  # as a plain int: testing a flag of the enum costs a call
_PIECE = 8  # a shorter start of a secret cut short is let through: no piece of it tells much
_TRAILING = " \t\n.,;:!?)]}'\""  # after a word, not part of it


class Scanner:
    """A policy's patterns compiled once per table, and its label key."""

    __slots__ = ("patterns", "_mac", "_runs", "context", "needles", "gates", "spans")

    def __init__(self, patterns: Sequence[Pattern], key: bytes) -> None:
        self.patterns = tuple(patterns)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        compiled: dict[tuple[str, int], re.Pattern[str]] = {}
        runs: list[re.Pattern[str] | None] = []
        for p in self.patterns:
            run = (p.run or "", p.regex.flags)
            if p.run is not None and run not in compiled:
                compiled[run] = re.compile(f"[{p.run}]*", p.regex.flags)
            runs.append(None if p.run is None else compiled[run])
        self._runs = tuple(runs)
        self.context = max((p.bounds.behind for p in self.patterns), default=0) + 1
        # What the fast paths look for, each set in one regex: the needles (lower case), the
        # gates, and the starts of the other patterns. `gates` is None when a pattern has
        # none of the three (a custom pattern): then there is no fast path.
        self.needles = re.compile(_any_of({n.lower() for p in self.patterns for n in p.needles}) or "(?!)")
        others = [p for p in self.patterns if not p.needles and p.gate is None]
        spans = "|".join(
            f"(?{'i' if p.regex.flags & re.IGNORECASE else ''}:{p.start.pattern})" for p in others if p.start)
        firsts = [first_chars(p.start.pattern, p.start.flags) for p in others if p.start]
        if spans and None not in firsts:  # a cheap look at each character before the alternatives
            spans = f"(?=[{''.join(firsts)}])(?:{spans})"  # type: ignore[arg-type]
        self.spans = re.compile(spans or "(?!)")
        self.gates = None
        if self.patterns and all(p.start is not None for p in others):
            self.gates = re.compile("|".join(f"(?:{p.gate})" for p in self.patterns if p.gate) or "(?!)")

    def label(self, kind: str, value: str) -> str:
        mac = self._mac.copy()
        mac.update(value.encode("utf-8", "surrogatepass"))
        return f"[REDACTED:{kind}:{mac.hexdigest()[:8]}]"

    def clean(self, text: str) -> bool:
        """Whether no match can be in `text` (a whole text): no needle, gate or start of a
        pattern anywhere in it. False also when a pattern has none of those to look for."""
        return self.gates is not None and not (
            self.needles.search(text.lower()) or self.gates.search(text) or self.spans.search(text))

    def redact(self, text: str, found: list[str]) -> str:
        """`text` with every match replaced; the kinds replaced are appended to `found`."""
        if self.clean(text):
            return text
        redacting = Redacting(self, found)
        return redacting.feed(text, final=True)

    def partial(self, text: str) -> tuple[int, str] | None:
        """Where in `text` (the end of a text cut short) a secret may have begun, and its
        kind: the first place where a pattern's start matches (anywhere, for a pattern
        without one), when what stands from there, trailing punctuation aside, is at least
        _PIECE characters and holds a needle or anything but letters (a key, a number, an
        address, `password=`), unlike a word of prose."""
        first: tuple[int, str] | None = None
        for pattern in self.patterns:
            found = pattern.start.search(text) if pattern.start is not None else None
            at = 0 if pattern.start is None else found.start() if found is not None else -1
            if at >= 0 and (first is None or at < first[0]):
                first = (at, pattern.kind)
        if first is None:
            return None
        tail = text[first[0]:].rstrip(_TRAILING)
        if len(tail) < _PIECE or (tail.isalpha() and not self.needles.search(tail.lower())):
            return None
        return first

    def stream(self, found: list[str]) -> Redacting:
        return Redacting(self, found)


def _any_of(words: set[str]) -> str:
    """One regex for any of `words`, as a trie: at each position of a text only the branch
    of its character is tried, not every word in turn (twice as fast on prose)."""

    def branches(node: dict[str, dict]) -> str:
        options = [re.escape(char) + branches(child) for char, child in sorted(node.items()) if char]
        if not options:
            return ""
        either = options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"
        return f"(?:{either})?" if "" in node else either

    return branches(trie(words))


class _Match:
    __slots__ = ("start", "end", "cut_start", "cut_end", "order", "label", "kind")

    def __init__(self, start: int, end: int, cut: tuple[int, int], order: int, label: str, kind: str) -> None:
        self.start, self.end = start, end
        self.cut_start, self.cut_end = cut
        self.order = order
        self.label = label
        self.kind = kind


class Redacting:
    """One text being redacted as it arrives: `feed` pieces, then `close`.

    Holds back only the unsettled tail (see the module docstring). Positions are
    counted from the start of the whole text; `_buffer` keeps the text from `_origin`.
    """

    __slots__ = ("_scanner", "_found", "_buffer", "_origin", "_emitted", "_taken", "_decided", "_level",
                 "_pending")

    def __init__(self, scanner: Scanner, found: list[str]) -> None:
        self._scanner = scanner
        self._found = found
        self._buffer = ""
        self._origin = 0
        self._emitted = 0  # text before this has been returned (as is, or as labels)
        self._taken = 0  # the end of the last match replaced: a match starting before it overlaps
        self._decided = [0] * len(scanner.patterns)  # per pattern: no match begins before it unseen
        self._level = 0  # when every entry of _decided is the same, that; else -1
        self._pending: list[_Match] = []

    def feed(self, text: str, final: bool = False) -> str:
        """What of the text so far is settled, redacted; `final`: the text ends here."""
        self._buffer += text
        if not self._pending and self._scanner.gates is not None:
            settled = self._quiet(final)
            if settled is not None:
                return self._emit_to(settled)
        return self._settle(final)

    def close(self) -> str:
        return self.feed("", final=True)

    def cut(self) -> str:
        """The text ends here, cut short (its upstream failed): the final pass, except that
        a tail that may be the start of a secret cut short is replaced by
        `[REDACTED:kind:partial]`. Such a start matches no pattern, yet its first characters
        are as secret as the whole; ordinary text (the last word of prose) goes out as it is."""
        out = self._settle(True)
        tail = self._scanner.partial(out)
        if tail is None:
            return out
        at, kind = tail
        self._found.append(kind)
        return f"{out[:at]}[REDACTED:{kind}:partial]"

    def quietly(self, text: str, final: bool = False) -> str | None:
        """`feed` when the fast path (`_quiet`) settles the text so far, which replaces
        nothing; else None, and the text is not taken."""
        if self._pending or self._scanner.gates is None:
            return None
        self._buffer += text
        settled = self._quiet(final)
        if settled is None:
            self._buffer = self._buffer[: len(self._buffer) - len(text)]
            return None
        return self._emit_to(settled)

    @property
    def unsent(self) -> str:
        """The text held back now."""
        return self._buffer[self._emitted - self._origin :]

    @property
    def held(self) -> int:
        """Characters held back now."""
        return self._origin + len(self._buffer) - self._emitted

    def _settle(self, final: bool) -> str:
        scanner, buffer, origin = self._scanner, self._buffer, self._origin
        end = origin + len(buffer)
        tails: dict[tuple[int, int], int] = {}
        decided = self._decided
        self._level = -1
        lowered: list[str] = []
        for i, pattern in enumerate(scanner.patterns):
            position = decided[i]
            if not final and pattern.start is not None:
                # Where a match could begin at all: usually nowhere, and that settles it.
                begins = self._begins(pattern, position, lowered)
                if begins is None:
                    decided[i] = end
                    continue
                position = begins
            cutoff = end if final else self._cutoff(i, pattern, tails)
            while position < end:
                found = self._next(pattern, position - origin, lowered)
                if found is None or (found.start() + origin >= cutoff and not self._ended(pattern, found)):
                    break
                position = self._consider(i, pattern, found)
            position = max(position, cutoff)
            if not final and pattern.start is not None and position < end:
                begins = self._begins(pattern, position, lowered)
                position = end if begins is None else begins
            decided[i] = position
        return self._emit_to(end if final else min(decided, default=end))

    def _quiet(self, final: bool = False) -> int | None:
        """The fast path of a stream: hold back the last word (up to _WORD characters) and
        settle everything before it when no pattern can begin there: no needle and no gate
        in it, and no start of the other patterns in it (looked for with the word after it:
        a start may need to see where the text ends). A match that begins
        before the last word and runs into it holds a space, so its keyword or needle stands
        before the word; one that holds no space (a key, an address, a token) lies before
        the word whole; numbers, which may hold spaces, are looked for with their starts.
        `final`: the text ends here, so the last word is looked at too and nothing is held.
        Returns the position settled, or None to take the whole way."""
        scanner, buffer, origin, decided = self._scanner, self._buffer, self._origin, self._decided
        low = self._level if self._level >= 0 else min(decided)
        start = low - origin
        end = len(buffer)
        if final:
            tail = end
        else:
            # The last word begins after the last space, line break or tab (other spaces
            # count as part of it: a longer word is held, never less).
            tail = max(buffer.rfind(" ", start), buffer.rfind("\n", start), buffer.rfind("\t", start)) + 1
            if end - max(tail, start) > _WORD:
                return None
        if tail <= start:
            return low  # the last word grew: nothing more to settle, nothing to look at yet
        region = buffer[start:tail]
        if scanner.needles.search(region.lower()) or scanner.gates.search(region):  # type: ignore[union-attr]
            return None
        span = scanner.spans.search(buffer, start)  # one may begin in the region and run into the word
        if span is not None and span.start() < tail:
            return None
        tail += origin
        if self._level >= 0 or max(decided) <= tail:
            self._decided = [tail] * len(decided)
        else:
            self._decided = [max(at, tail) for at in decided]
        self._level = tail
        return tail

    def _emit_to(self, settled: int) -> str:
        if self._pending:
            out = self._emit(settled)
        elif settled > self._emitted:
            out = self._buffer[self._emitted - self._origin : settled - self._origin]
            self._emitted = settled
        else:
            out = ""
        keep = max(self._origin, min(settled, self._emitted) - self._scanner.context)
        if keep > self._origin:
            self._buffer = self._buffer[keep - self._origin :]
            self._origin = keep
        return out

    def _next(self, pattern: Pattern, at: int, lowered: list[str]) -> re.Match[str] | None:
        """The leftmost match of `pattern` beginning at `at` or later in the buffer.

        With needles, the regex is tried only where one stands within reach: a match
        beginning at `b` holds a needle between `b + around[0]` and `b + around[1]`.
        """
        buffer, regex = self._buffer, pattern.regex
        if not pattern.needles:
            return regex.search(buffer, at)
        text = buffer
        if regex.flags & _FOLD:
            if not lowered:
                lowered.append(buffer.lower())
            text = lowered[0]
            if len(text) != len(buffer):  # a character whose lower case is longer: no shortcut
                return regex.search(buffer, at)
        low, high = pattern.around
        needles = pattern.needles
        while True:  # the leftmost begin with a needle within reach, tried one by one
            needle = min((a for n in needles if (a := text.find(n, max(at + low, 0))) >= 0), default=-1)
            if needle < 0:
                return None
            at = max(at, needle - high)
            match = regex.match(buffer, at)
            if match is not None:
                return match
            at += 1

    def _begins(self, pattern: Pattern, at: int, lowered: list[str]) -> int | None:
        """Where `pattern.start` first matches at `at` or later, or None. With needles, the
        regex runs only from where a start could stand: within reach of the first needle
        (a start that is not cut by the text's end holds one, as a match does), or within
        a match's width of the end (a start cut by the end is the beginning of a match)."""
        buffer, origin = self._buffer, self._origin
        local = at - origin
        if pattern.needles:
            text = buffer
            if pattern.regex.flags & _FOLD:
                if not lowered:
                    lowered.append(buffer.lower())
                text = lowered[0]
            if len(text) == len(buffer):
                low, high = pattern.around
                reach = len(buffer) - pattern.bounds.width
                after = max(local + low, 0)
                for needle in pattern.needles:
                    found = text.find(needle, after)
                    if found >= 0 and found - high < reach:
                        reach = found - high
                local = max(local, reach)
        begins = pattern.start.search(buffer, local)  # type: ignore[union-attr]
        return None if begins is None else begins.start() + origin

    def _ended(self, pattern: Pattern, found: re.Match[str]) -> bool:
        """A match whose last run (of `pattern.tail`) has ended before the text's end: final."""
        tail = pattern.tail
        after = found.end()
        return tail is not None and after + pattern.bounds.ahead < len(self._buffer) and (
            tail.match(self._buffer, after) is None)

    def _cutoff(self, i: int, pattern: Pattern, tails: dict[tuple[int, int], int]) -> int:
        """The first position of pattern i that text still to come could change."""
        buffer, origin = self._buffer, self._origin
        end = origin + len(buffer)
        bounds = pattern.bounds
        by_width = end - pattern.holdback
        run = self._scanner._runs[i]
        if run is None:
            return by_width
        last = end - bounds.ahead  # the lookahead of a match ending past here is unseen
        window = max(by_width, origin)
        if last <= window:
            return by_width
        key = (id(run), bounds.ahead)
        start = tails.get(key)
        if start is None:
            segment = buffer[window - origin : last - origin][::-1]
            start = tails[key] = last - run.match(segment).end()
        return max(by_width, start)

    def _consider(self, i: int, pattern: Pattern, found: re.Match[str]) -> int:
        """A final match: pending replacement, unless its value fails the pattern's check.

        Returns where the search goes on: after the match; or, when the check rejects it
        (and the `shrink` shorter matches at its start), just after its start, so that a
        rejected look-alike (a card number with a digit too many before it) hides nothing.
        """
        group = "secret" if "secret" in pattern.regex.groupindex else 0
        origin = self._origin
        tries = pattern.shrink
        while pattern.valid is not None and not pattern.valid(found.group(group)):
            shorter = pattern.regex.match(self._buffer, found.start(), found.end() - 1) if tries else None
            if shorter is None:
                return found.start() + origin + 1
            found, tries = shorter, tries - 1
        value = found.group(group)
        cut = found.span(group)
        self._pending.append(_Match(
            found.start() + origin, found.end() + origin, (cut[0] + origin, cut[1] + origin), i,
            self._scanner.label(pattern.kind, value), pattern.kind,
        ))
        return found.end() + origin

    def _emit(self, settled: int) -> str:
        """The text up to `settled` with its pending matches replaced (a match begun before
        `settled` is replaced whole, even when it ends after)."""
        pending = self._pending
        parts: list[str] = []
        buffer, origin = self._buffer, self._origin
        if pending:
            pending.sort(key=lambda m: (m.start, m.start - m.end, m.order))
            ready = 0
            for match in pending:
                if match.start >= settled:
                    break
                ready += 1
                if match.start < self._taken:
                    continue  # overlaps a match already replaced
                parts.append(buffer[self._emitted - origin : match.cut_start - origin])
                parts.append(match.label)
                self._found.append(match.kind)
                self._emitted = match.cut_end
                self._taken = match.end
            del pending[:ready]
        if settled > self._emitted:
            parts.append(buffer[self._emitted - origin : settled - origin])
            self._emitted = settled
        return "".join(parts)
