"""Header fields as Tornado's HTTPHeaders holds them, looked up in one step.

A request's headers (server/request_head.py) and an answer's (handlers/base.py) are asked
for a few names each, several times per request. HTTPHeaders inherits `get` from
`Mapping`, which goes through `__getitem__` and a raised KeyError for a missing name, and
its constructor goes through `MutableMapping.update` even when empty. Here both are one
dictionary lookup; everything else is HTTPHeaders' own, so a `Headers` is an HTTPHeaders
wherever Tornado's code meets one.
"""

from __future__ import annotations

from typing import Any

from tornado import httputil

_normalize = httputil._normalize_header  # how HTTPHeaders keys names (cached per name)


class Headers(httputil.HTTPHeaders):
    def __init__(self) -> None:
        self._as_list: dict[str, list[str]] = {}
        self._combined_cache: dict[str, str] = {}

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The field's value (repeated lines joined by commas, as HTTPHeaders does), or `default`."""
        values = self._as_list.get(_normalize(name))
        if values is None:
            return default
        return values[0] if len(values) == 1 else ",".join(values)
