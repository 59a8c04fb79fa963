"""Which headers pass between the client and a provider, either way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

# Headers that describe one hop, or that the gateway sets itself: never relayed either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "expect",
    }
)
# Client headers that carry the client's own credentials or state: never sent to a provider.
CLIENT_PRIVATE = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
# Upstream headers kept from the client's view.
UPSTREAM_PRIVATE = frozenset({"set-cookie"})


class HeaderFields(Protocol):
    """A client's request headers (Tornado's) or an upstream's answer headers (ours)."""

    def get_list(self, name: str) -> list[str]: ...

    def get_all(self) -> Iterable[tuple[str, str]]: ...


def relayable(headers: HeaderFields, drop: frozenset[str]) -> Iterable[tuple[str, str]]:
    """Headers safe to pass on: no hop-by-hop ones, none the sender named in its
    `Connection` header (they are for this hop only, RFC 9110 §7.6.1) and none in `drop`."""
    named = {
        option.strip().lower() for value in headers.get_list("Connection") for option in value.split(",")
    }
    for name, value in headers.get_all():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in drop and lower not in named:
            yield name, value
