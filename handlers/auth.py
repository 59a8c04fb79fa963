"""May this request call this route? Decided from the request line and headers alone.

It runs when the headers arrive (server.limits.Guard), before any body byte is read
and before a `100 Continue` is sent, so a caller without a valid token costs no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from tornado.httputil import HTTPHeaders

from access.keys import KeyRing, Principal
from dsl.table import Route
from handlers.headers import joined

_MESSAGES = {
    "missing": "missing bearer token",
    "unknown": "invalid API key",
    "disabled": "this API key is disabled",
    "expired": "this API key has expired",
    "admin_only": "this route needs an admin key",
    "read_only": "this key may only read (GET)",
    "endpoint_not_allowed": "this key may not call this endpoint",
}


# Not frozen (never changed all the same): made per refused request (see limits/backend.py).
@dataclass(slots=True)
class Denial:
    """A refusal: 401 (who are you?) or 403 (not allowed); `reason` is the metric label."""

    status: int
    reason: str

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]

    @property
    def code(self) -> str:
        return "invalid_api_key" if self.status == 401 else self.reason


def authorize(
    keys: KeyRing, route: Route, method: str, path: str, headers: HTTPHeaders
) -> Principal | Denial:
    """Bearer token (or x-api-key, as Anthropic SDKs send it) → principal → may it call this?"""
    fields = headers._as_list  # by normalized name (server/request_head.py): one lookup each
    authorization = fields.get("Authorization")
    scheme, _, token = (joined(authorization) if authorization else "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        api_key = fields.get("X-Api-Key")
        token = joined(api_key).strip() if api_key else ""
    if not token:
        return Denial(401, "missing")
    principal, refusal = keys.authenticate(token)
    if principal is None:
        assert refusal is not None
        return Denial(401, refusal)
    forbidden = principal.forbids(route.admin, method, path)
    if forbidden is not None:
        return Denial(403, forbidden)
    return principal
