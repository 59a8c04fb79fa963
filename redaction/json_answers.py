"""Redacting a forward route's answer: a JSON body's strings, as its request's are.

Forward routes relay any endpoint (embeddings, moderations, files, batches). When the
route's policy redacts answers, an answer that is a JSON object or array is read whole and
every string in it redacted, but the values of keys that name things (`model`, `id`,
`*_id`, `role`, `type`), as in the request; a body nothing changed goes out byte for byte.
Any other body (an event stream, audio, a file) is relayed as it comes: the gateway does
not know where text stands in a format it does not speak.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from redaction.policy import Policy
from redaction.requests import redact_strings


class JsonAnswerRedactor:
    """A StreamConverter (converters/base.py) for one forward answer; `counted` is told the
    kind of every match replaced."""

    __slots__ = ("_policy", "_counted", "_json", "_body")

    def __init__(self, policy: Policy, counted: Callable[[str], None]) -> None:
        self._policy = policy
        self._counted = counted
        self._json: bool | None = None  # known from the first byte that is not white space
        self._body: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        if self._json is None:
            head = data.lstrip()
            if not head:
                self._body.append(data)
                return b""
            self._json = head[:1] in (b"{", b"[")
            if not self._json:
                data = b"".join(self._body) + data
                self._body.clear()
        if self._json:
            self._body.append(data)
            return b""
        return data

    def close(self) -> bytes:
        body = b"".join(self._body)
        self._body.clear()
        if not self._json:
            return body
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        found: list[str] = []
        redact_strings(document, self._policy, found, skip_names=True)
        for kind in found:
            self._counted(kind)
        return orjson.dumps(document) if found else body
