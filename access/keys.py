"""Who is calling: bearer tokens mapped to principals.

Tokens are looked up by their SHA-256 digest, so a lookup costs one hash and
one dict probe whatever the number of keys. Timing leaks nothing useful: the
comparison the probe makes is between digests, which an attacker cannot steer
byte by byte. Role and scope enforcement grows here (see the RBAC issue).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `name` is safe to log and to use as a metric label."""

    name: str
    roles: frozenset[str]
    allowed_agents: frozenset[str] | None = None
    allowed_endpoints: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    enabled: bool = True

    def usable(self, now: datetime) -> bool:
        return self.enabled and (self.expires_at is None or now < self.expires_at)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class KeyRing:
    """Immutable token → principal index, rebuilt on every reload."""

    __slots__ = ("_by_digest",)

    def __init__(self, entries: dict[bytes, Principal]) -> None:
        self._by_digest = dict(entries)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal for `token`, or None when unknown, disabled or expired."""
        principal = self._by_digest.get(digest(token))
        if principal is None:
            return None
        return principal if principal.usable(now or datetime.now(UTC)) else None
