"""The header lines of a request to a provider (upstream/request.py `provider_request`)."""

from __future__ import annotations

import pytest

from dsl.table import Provider
from upstream.request import provider_request

OWN = (("Authorization", "Bearer sk-own"), ("anthropic-version", "2023-06-01"))


def provider(headers: tuple[tuple[str, str], ...] = OWN) -> Provider:
    return Provider("p", "anthropic", "http://127.0.0.1:9/v1", {}, 60.0, 5.0, headers, "sk-own")


def test_the_providers_own_headers_replace_the_clients_except_its_anthropic_version() -> None:
    given = [("authorization", "Bearer client"), ("X-Trace", "t1"), ("Content-Type", "application/json")]
    lines = provider_request(provider(), "http://x/", "POST", b"{}", iter(given)).header_lines
    assert lines == [b"X-Trace: t1", b"Content-Type: application/json", b"Authorization: Bearer sk-own",
                     b"anthropic-version: 2023-06-01", b"Expect:", b"Pragma:"]
    chosen = provider_request(provider(), "http://x/", "GET", None, [("Anthropic-Version", "2024-01-01")])
    assert chosen.header_lines == [b"Anthropic-Version: 2024-01-01", b"Authorization: Bearer sk-own",
                                   b"Expect:", b"Pragma:"]


def test_a_body_without_a_content_type_is_sent_without_libcurls() -> None:
    untyped = provider_request(provider(), "http://x/", "POST", b"{}", ()).header_lines
    assert untyped[-1] == b"Content-Type:"
    typed = provider_request(provider((*OWN, ("content-type", "text/plain"))), "http://x/", "POST", b"{}", ())
    assert b"Content-Type:" not in typed.header_lines


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\rb"])
def test_a_header_that_would_not_stay_one_line_refuses_the_request(value: str) -> None:
    given = (header for header in [("X-Fine", "ok"), ("X-Bad", value)])  # read once, as relayed headers are
    with pytest.raises(ValueError, match="'X-Bad' holds a line break"):
        provider_request(provider(), "http://x/", "POST", b"{}", given)
    with pytest.raises(ValueError, match="line break"):
        provider_request(provider((("X-Own", value),)), "http://x/", "GET", None, ())


def test_each_provider_sends_its_own_headers_and_limits_even_under_one_name() -> None:
    """What a provider sends alike is made once per provider: a reloaded provider of the same
    name (a new key, a new timeout) sends its own, and the one before it still sends its own."""
    old = provider()
    new = Provider("p", "anthropic", "http://127.0.0.1:9/v1", {}, 30.0, 5.0, (("Authorization", "Bearer sk-new"),))
    for _ in range(2):  # made, then kept
        sent = provider_request(new, "http://x/", "GET", None, ())
        assert sent.header_lines[0] == b"Authorization: Bearer sk-new" and sent.timeout_ms == 30_000
        before = provider_request(old, "http://x/", "GET", None, ())
        assert before.header_lines[0] == b"Authorization: Bearer sk-own" and before.timeout_ms == 60_000
    assert provider_request(new, "http://x/", "GET", None, (), timeout=2.0).timeout_ms == 2_000


def test_the_request_id_follows_the_clients_headers_unless_the_provider_names_its_own() -> None:
    sent = provider_request(provider(), "http://x/", "POST", b"{}", [("Content-Type", "application/json")],
                            request_id="rid-1").header_lines
    assert sent[:2] == [b"Content-Type: application/json", b"x-request-id: rid-1"]
    own = provider((*OWN, ("X-Request-Id", "fixed")))
    replaced = provider_request(own, "http://x/", "GET", None, (), request_id="rid-1").header_lines
    assert b"x-request-id: rid-1" not in replaced and b"X-Request-Id: fixed" in replaced


def test_a_line_made_before_is_what_a_line_made_afresh_is() -> None:
    """Client lines are remembered (short ones): every request sends what the first one sent,
    a long line is made each time alike, and a line that cannot be encoded is refused before
    one that would not stay one line, as when every line was encoded first."""
    given = [("X-Trace", "t1"), ("X-Long", "v" * 300), ("Content-Type", "application/json")]
    first = provider_request(provider(), "http://x/", "POST", b"{}", given).header_lines
    again = provider_request(provider(), "http://x/", "POST", b"{}", given).header_lines
    assert first == again == [b"X-Trace: t1", b"X-Long: " + b"v" * 300, b"Content-Type: application/json",
                              b"Authorization: Bearer sk-own", b"anthropic-version: 2023-06-01", b"Expect:",
                              b"Pragma:"]
    with pytest.raises(UnicodeEncodeError):
        provider_request(provider(), "http://x/", "POST", b"{}", [("X-Bad", "a\nb"), ("X-Euro", "\u20ac")])
    with pytest.raises(ValueError, match="'X-Bad' holds a line break"):
        provider_request(provider(), "http://x/", "POST", b"{}", [("X-Bad", "a\nb"), ("X-Bad2", "c\rd")])
