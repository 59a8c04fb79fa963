"""Header fields as Tornado's HTTPHeaders holds them, looked up in one step.

A request's headers (server/request_head.py) and an answer's (handlers/base.py) are asked
for a few names each, several times per request. HTTPHeaders inherits `get` from
`Mapping`, which goes through `__getitem__` and a raised KeyError for a missing name, and
its constructor goes through `MutableMapping.update` even when empty. Here both are one
dictionary lookup; everything else is HTTPHeaders' own, so a `Headers` is an HTTPHeaders
wherever Tornado's code meets one.

Its one state is `_as_list` (names in Http-Header-Case → their values, in order): values are
joined when read, never cached, so the gateway's hot paths may read and write that dictionary
directly with a normalized name (one dict operation, where a method costs a call and a
normalization) and no method ever sees a stale value.
"""

from __future__ import annotations

from typing import Any

from tornado import httputil

normalize_name = httputil._normalize_header  # how HTTPHeaders keys names (cached per name)


class Headers(httputil.HTTPHeaders):
    def __init__(self, fields: dict[str, list[str]] | None = None) -> None:
        """`fields`: the values by name, names already in Http-Header-Case (taken, not copied)."""
        self._as_list: dict[str, list[str]] = {} if fields is None else fields
        self._combined_cache: dict[str, str] = {}  # HTTPHeaders.add and __delitem__ pop from it; never filled

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The field's value (repeated lines joined by commas, as HTTPHeaders does), or `default`."""
        values = self._as_list.get(normalize_name(name))
        return default if values is None else joined(values)

    def __getitem__(self, name: str) -> str:
        return joined(self._as_list[normalize_name(name)])

    def __setitem__(self, name: str, value: str) -> None:
        self._as_list[normalize_name(name)] = [value]


def joined(values: list[str]) -> str:
    """A field's value from its lines in `_as_list`: repeated lines joined by commas."""
    return values[0] if len(values) == 1 else ",".join(values)
