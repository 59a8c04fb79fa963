"""The answer's status and headers, parsed once from the header lines libcurl hands over.

libcurl passes every header line of every head it reads (an interim 1xx first, the
final one last, trailers after the body); the reader keeps the final head only, so
that handlers see the status and headers once, already parsed.
"""

from __future__ import annotations

from collections.abc import Iterator


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


class HeadReader:
    """Turns libcurl's header lines into the final head: `line` returns it once complete."""

    __slots__ = ("status", "_fields", "_done")

    def __init__(self) -> None:
        self.status = 0
        self._fields: list[tuple[str, str]] = []
        self._done = False

    def line(self, raw: bytes) -> Headers | None:
        """One header line (with its line end); the headers when this line ended the final head."""
        if self._done:
            return None  # trailers: never relayed, and the head has been read
        if raw.startswith(b"HTTP/"):  # a (new) status line: an interim head came before
            parts = raw.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self._fields = []
        elif raw == b"\r\n" or raw == b"\n":
            if self.status >= 200 or self.status == 0:
                self._done = True
                return Headers(self._fields)
        elif raw[:1] in (b" ", b"\t") and self._fields:  # an obsolete folded continuation line
            name, value = self._fields[-1]
            self._fields[-1] = (name, f"{value} {raw.decode('latin-1').strip()}")
        else:
            name, colon, value = raw.decode("latin-1").partition(":")
            if colon:
                self._fields.append((name.strip(), value.strip()))
        return None
