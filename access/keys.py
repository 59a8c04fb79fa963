"""Who is calling, and what they may do: bearer tokens mapped to principals with RBAC.

Tokens are looked up by their SHA-256 digest, so a lookup costs one hash and
one dict probe whatever the number of keys. Timing leaks nothing useful: the
comparison the probe makes is between digests, which an attacker cannot steer
byte by byte.

Roles: admin may do everything; user may call every route not marked admin;
read-only may only GET (and HEAD) such routes. `allowed_endpoints` and
`allowed_agents`, when present, narrow any role further.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class EndpointRule:
    """One allowed_endpoints entry: "METHOD /path", METHOD may be * or ANY, the path may use
    {param} (one segment) and * (anything, slashes included)."""

    methods: frozenset[str] | None
    path: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> EndpointRule:
        method, _, path = text.strip().partition(" ")
        methods = None if method in ("*", "ANY") else frozenset(method.upper().split("|"))
        pattern = ""
        for piece in re.split(r"(\{[^}]*\}|\*)", path.strip()):
            if piece == "*":
                pattern += ".*"
            elif piece.startswith("{") and piece.endswith("}"):
                pattern += "[^/]+"
            else:
                pattern += re.escape(piece)
        return cls(methods, re.compile(pattern + "$"))

    def allows(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and self.path.match(path) is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `name` is safe to log and to use as a metric label."""

    name: str
    roles: frozenset[str]
    allowed_agents: frozenset[str] | None = None
    allowed_endpoints: tuple[EndpointRule, ...] | None = None
    expires_at: datetime | None = None
    enabled: bool = True

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this key cannot be used at `now` ('disabled', 'expired'), or None. `now` defaults
        to the present, read only for a key that expires (a clock read costs a datetime)."""
        if not self.enabled:
            return "disabled"
        if self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at:
            return "expired"
        return None

    def forbids(self, admin_route: bool, method: str, path: str) -> str | None:
        """Why this caller may not call `method path` on this route, or None when it may."""
        if "admin" not in self.roles:
            if admin_route:
                return "admin_only"
            if "user" not in self.roles and method not in READ_METHODS:
                return "read_only"
        if self.allowed_endpoints is not None and not any(
            rule.allows(method, path) for rule in self.allowed_endpoints
        ):
            return "endpoint_not_allowed"
        return None

    def may_use(self, model: str) -> bool:
        """Whether this caller may send `model`: on chat routes an agent or provider/model, on
        forward routes the body's `model` exactly as sent (a bare upstream model, or provider/model)."""
        return self.allowed_agents is None or model in self.allowed_agents


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


_TOKENS_KNOWN = 256  # tokens whose digests are remembered (a client sends the same one each time)
_TOKEN_REMEMBERED = 256  # characters of the longest token remembered: at most 64 KiB in all

# A token's digest, remembered for the last few tokens: hashing one costs about 6 K instructions,
# a lookup 1 K. Kept in memory only, as the request head reader keeps the lines they came in.
_known_digest = functools.lru_cache(maxsize=_TOKENS_KNOWN)(digest)


class KeyRing:
    """Immutable token → principal index, rebuilt on every reload."""

    __slots__ = ("_by_digest",)

    def __init__(self, entries: dict[bytes, Principal]) -> None:
        self._by_digest = dict(entries)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, token: str, now: datetime | None = None) -> tuple[Principal | None, str | None]:
        """(principal, None), or (None, why not): 'unknown', 'disabled' or 'expired'."""
        known = _known_digest(token) if len(token) <= _TOKEN_REMEMBERED else digest(token)
        principal = self._by_digest.get(known)
        if principal is None:
            return None, "unknown"
        refusal = principal.refusal(now)
        return (None, refusal) if refusal else (principal, None)
