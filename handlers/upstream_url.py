"""Upstream URLs built from what a client sent: checked, then percent-encoded.

Tornado hands the request line over as latin-1 text, still percent-encoded as the
client wrote it. libcurl takes only ASCII and ends the path at a '#', so a client's
part of a URL is refused when it could leave its place (dot segments, absolute
URLs, '#', '?', control characters: checked raw and after every round of
percent-decoding), and else percent-encoded, escapes already there kept.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, unquote_to_bytes

_FORBIDDEN = re.compile(r"[\\#?\x00-\x1f\x7f]|://|^/|^[A-Za-z][A-Za-z0-9+.-]*:")
_REFUSED_BYTES = re.compile(rb"[#?\x00-\x1f\x7f]")
# RFC 3986 pchar besides the unreserved characters: legal in a path segment as they are.
_SEGMENT_SAFE = "!$&'()*+,;=:@"


def unsafe_path(raw: str) -> str | None:
    """Why `raw` (still percent-encoded) may not be forwarded, or None when it is safe."""
    seen = raw
    for _ in range(4):
        if _FORBIDDEN.search(seen):
            return "'#', '?', backslashes, control characters and absolute URLs are not allowed"
        if any(segment in (".", "..") for segment in seen.split("/")):
            return "dot segments are not allowed"
        decoded = unquote(seen)
        if decoded == seen:
            return None
        seen = decoded
    return "too many levels of percent-encoding"


def encode_path(raw: str) -> str:
    """`raw` with non-ASCII bytes, spaces and control characters percent-encoded, escapes kept."""
    return quote(raw.encode("latin-1"), safe=_SEGMENT_SAFE + "/%")


def encode_parameter(raw: str, slashes: bool) -> str | None:
    """One path parameter, decoded once and percent-encoded for the upstream path.

    None when it holds '#', '?' or a control character, raw or percent-encoded.
    `slashes`: a {name*} parameter spans segments; each is encoded on its own, so an
    encoded '/' (%2F) stays encoded.
    """
    if slashes:
        segments = [encode_parameter(segment, False) for segment in raw.split("/")]
        return None if None in segments else "/".join(segments)  # type: ignore[arg-type]
    value = unquote_to_bytes(raw.encode("latin-1"))
    if _REFUSED_BYTES.search(value):
        return None
    return quote(value, safe=_SEGMENT_SAFE)


def encode_query(raw: str) -> str:
    """The query string as sent, with what a URL may not carry raw percent-encoded."""
    return quote(raw.encode("latin-1"), safe=_SEGMENT_SAFE + "/?%[]")
