"""The key ring (access/keys.py) finds a token's principal by its digest, remembered for the
last few short tokens only."""

from __future__ import annotations

from access.keys import _TOKEN_REMEMBERED, _TOKENS_KNOWN, KeyRing, Principal, _known_digest, digest


def test_tokens_are_found_by_digest_and_only_short_ones_a_bounded_few_remembered() -> None:
    ring = KeyRing({digest("tok-one"): Principal("admin", frozenset({"admin"}))})
    _known_digest.cache_clear()
    for _ in range(2):
        principal, refusal = ring.authenticate("tok-one")
        assert principal is not None and refusal is None
        assert ring.authenticate("tok-two") == (None, "unknown")
    assert _known_digest.cache_info().hits == 2
    long = "t" * (_TOKEN_REMEMBERED + 1)
    assert ring.authenticate(long) == (None, "unknown")
    assert _known_digest.cache_info().currsize == 2  # a long token is hashed, never kept
    for number in range(2 * _TOKENS_KNOWN):
        ring.authenticate(f"tok-{number}")
    assert _known_digest.cache_info().currsize <= _TOKENS_KNOWN
