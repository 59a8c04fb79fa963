"""The answer's status and headers, read from the header lines libcurl hands over.

libcurl passes every header line of every head it reads (an interim 1xx first, the
final one last, trailers after the body); the handle collects them as they come and
hands them over before the body's first bytes (or at the transfer's end: an answer with
no body), and the exchange reads the final head only, once (`final_head`).

A head is kept as its text, and a field is found by name when asked for: handlers read
two or three of a dozen, and only a relayed head is read whole (`get_all`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

# A field line: its name up to the first colon, its value to the line's end (both stripped
# after); a line without a colon is not a field.
_FIELD = re.compile(r"^([^:\n]*):([^\n]*)", re.MULTILINE)
BLANK = (b"\r\n", b"\n")  # the line that ends a head


@functools.lru_cache(maxsize=32)
def _named(name: str) -> re.Pattern[str]:
    """The values of field `name` (any case), as `_FIELD` reads names: spaces around it stripped.
    It starts with the line break before the field (the text starts with one too), so that a
    search skips straight from line to line."""
    return re.compile(rf"\n[^\S\n]*(?i:{re.escape(name)})[^\S\n]*:([^\n]*)")


class Headers:
    """An answer's header fields in arrival order, looked up by name in any case.

    `text`: the head's status line (or nothing), then its field lines (no folded lines, no
    other status line), each after a line break; its fields are parsed only when they are all
    asked for."""

    __slots__ = ("_text", "_fields", "_found")

    def __init__(self, text: str = "\n", fields: list[tuple[str, str]] | None = None) -> None:
        # Every field line follows a line break (see `_named`), and the status line none: kept
        # as read, with no copy to put a line break in front.
        self._text = text
        self._fields = fields
        # Each name's value once looked up (None: absent): Content-Type is asked for two or three
        # times per answer, and each search of the text costs some 9 K instructions.
        self._found: dict[str, str | None] = {}

    @classmethod
    def of(cls, fields: list[tuple[str, str]]) -> Headers:
        """Headers holding `fields` (names without colons, values without line breaks)."""
        return cls("\n" + "".join(f"{name}:{value}\n" for name, value in fields), fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's value (several joined by commas, as RFC 9110 reads them), else `default`."""
        found = self._found
        if name in found:
            value = found[name]
        else:
            values = _named(name).findall(self._text)
            if not values:
                value = None
            elif len(values) == 1:
                value = values[0].strip()
            else:
                value = ",".join([value.strip() for value in values])
            found[name] = value
        return default if value is None else value

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        return _named(name).search(self._text) is not None

    def get_list(self, name: str) -> list[str]:
        """Every value of the field, one per line it came on."""
        return [value.strip() for value in _named(name).findall(self._text)]

    def get_all(self) -> Iterator[tuple[str, str]]:
        """Every field, in arrival order (what is relayed)."""
        if self._fields is None:
            text = self._text  # read from its first line break: a status line is no field
            fields = _FIELD.findall(text, text.find("\n"))
            self._fields = [(name.strip(), value.strip()) for name, value in fields]
        return iter(self._fields)

    __iter__ = get_all


@dataclass(frozen=True, slots=True)
class NoHeaders:
    """The fields of an answer whose head is not in yet (or never came): none. One constant
    shared by every exchange until its head is read, rather than an empty `Headers` made per
    exchange (some 2 K instructions); it holds nothing to change."""

    def get(self, name: str, default: str | None = None) -> str | None:
        return default

    def __getitem__(self, name: str) -> str:
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return False

    def get_list(self, name: str) -> list[str]:
        return []

    def get_all(self) -> Iterator[tuple[str, str]]:
        return iter(())

    __iter__ = get_all


NO_HEADERS = NoHeaders()


def final_head(lines: list[bytes]) -> tuple[int, Headers] | None:
    """The first final head among the complete heads in `lines` (each ended by a blank line):
    its status and headers, or None when there is none yet (only interim heads, or a head
    cut short)."""
    if lines and lines[-1] == b"\r\n" and lines.count(b"\r\n") == 1 and b"\n" not in lines:
        return read_head(lines)  # the usual: one head, no interim one before it (no loop of ours)
    start = 0
    for end, line in enumerate(lines):
        if line in BLANK:
            read = read_head(lines[start:end])
            if read is not None:
                return read
            start = end + 1
    return None


def read_head(lines: list[bytes]) -> tuple[int, Headers] | None:
    """One head's header lines (status line first; the blank line that ends it may follow, as
    it holds no field): its status and headers, or None for an interim (1xx) head, which a
    final one follows."""
    status = fields = 0  # where the field lines start
    if lines and lines[0][:5] == b"HTTP/":  # libcurl starts each head with its status line
        status = _status(lines[0])
        if 0 < status < 200:
            return None
        fields = len(lines[0])
    text = b"".join(lines).decode("latin-1")
    # A head whose fields a line break followed by a space, a tab or "HTTP/" starts (or ends) is
    # read line by line; a `str in str` each (no call: a pattern's search costs some 3 K instructions).
    if text[fields:fields + 1] in (" ", "\t") or "\n " in text or "\n\t" in text or "\nHTTP/" in text:
        return status, Headers.of(_fields_line_by_line(lines[1:] if fields else lines))
    # The usual head: kept as it came (its status line too), its fields found when asked for.
    return status, Headers(text if fields and text[fields - 1] == "\n" else "\n" + text[fields:])


@functools.lru_cache(maxsize=32)
def _status(line: bytes) -> int:
    """The status of a status line (0 when it has none): read once per line a provider sends
    (`HTTP/1.1 200 OK`), not per answer."""
    parts = line.split(None, 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _fields_line_by_line(lines: list[bytes]) -> list[tuple[str, str]]:
    """The fields of a head with folded lines (or a status line among its fields)."""
    fields: list[tuple[str, str]] = []
    for raw in lines:
        if raw.startswith(b"HTTP/"):  # another status line: only the fields after it count
            fields = []
        elif raw[:1] in (b" ", b"\t") and fields:  # an obsolete folded continuation line
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {raw.decode('latin-1').strip()}")
        else:
            name, colon, value = raw.decode("latin-1").partition(":")
            if colon:
                fields.append((name.strip(), value.strip()))
    return fields
