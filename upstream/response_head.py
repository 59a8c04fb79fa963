"""The answer's status and headers, parsed once from the header lines libcurl hands over.

libcurl passes every header line of every head it reads (an interim 1xx first, the
final one last, trailers after the body); the handle collects a head's lines and hands
them over whole at the blank line that ends it (upstream/handle.py), and the exchange
reads the final head only, once, so that handlers see the status and headers parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# A field line: its name up to the first colon, its value to the line's end (both stripped
# after); a line without a colon is not a field.
_FIELD = re.compile(r"^([^:\n]*):([^\n]*)", re.MULTILINE)


class Headers:
    """An answer's header fields in arrival order, looked up by name in any case."""

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        index: dict[str, list[str]] = {}
        for name, value in fields:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's value (several joined by commas, as RFC 9110 reads them), else `default`."""
        values = self._index.get(name.lower())
        if values is None:
            return default
        return values[0] if len(values) == 1 else ",".join(values)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._index

    def get_list(self, name: str) -> list[str]:
        """Every value of the field, one per line it came on."""
        return self._index.get(name.lower(), [])

    def get_all(self) -> Iterator[tuple[str, str]]:
        """Every field, in arrival order (what is relayed)."""
        return iter(self._fields)

    __iter__ = get_all


def read_head(lines: list[bytes]) -> tuple[int, Headers] | None:
    """One head's header lines (status line first, without the blank line that ends it): its
    status and headers, or None for an interim (1xx) head, which a final one follows."""
    status = 0
    if lines and lines[0].startswith(b"HTTP/"):  # libcurl starts each head with its status line
        parts = lines[0].split(None, 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        lines = lines[1:]
    if 0 < status < 200:
        return None
    block = b"".join(lines)
    if b"\n " in block or b"\n\t" in block or block[:1] in (b" ", b"\t") or b"\nHTTP/" in block:
        return status, Headers(_fields_line_by_line(lines))
    # The usual head: every field in one pass over the block, no call per line.
    found = _FIELD.findall(block.decode("latin-1"))
    return status, Headers([(name.strip(), value.strip()) for name, value in found])


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
