"""The request head reader (server/request_head.py) accepts what Tornado's accepts, and no more."""

from __future__ import annotations

import re

import pytest
from tornado import httputil

from handlers.headers import Headers
from server.http1 import _HEAD_END, _answer_head, _head_size
from server.request_head import (
    _HOSTS_KNOWN,
    _LINE_REMEMBERED,
    _LINES_KNOWN,
    GatewayRequest,
    _host_name,
    _known_field,
    _known_request_line,
    _request_line,
    read_fields,
    request_line,
)


def read_text(text: str) -> Headers:
    """The header lines of `text` (each ending in CRLF or LF), as the connection hands them over."""
    return read_fields(text.split("\n")[:-1])


class _Connection:
    class context:  # noqa: N801 - the attribute HTTPServerRequest reads
        remote_ip = "192.0.2.7"
        protocol = "http"


@pytest.mark.parametrize("text", [
    "Host: x\r\nContent-Type: application/json\r\n",
    "Host: x\nX-Empty:\n",
    "Host:   spaced \t\r\nX-Tab: a\tb\r\n",
    "Host: x\r\nX-Latin: caf\xe9\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n",
    "",
])
def test_fields_read_as_tornado_reads_them(text: str) -> None:
    ours = read_text(text)
    tornados = httputil.HTTPHeaders.parse(text)
    assert list(ours.get_all()) == list(tornados.get_all())
    assert dict(ours) == dict(tornados)


@pytest.mark.parametrize("text", [
    "Host: x\r\nBad Name: y\r\n", "Host: x\r\n folded\r\n", "Host: x\r\nNoColon\r\n", "X: a\x00b\r\n",
    "X: a\rb\r\n", "X: a\x7f\r\n", "X: a\r\r\n", ": empty-name\r\n",
])
def test_fields_tornado_refuses_are_refused(text: str) -> None:
    with pytest.raises(httputil.HTTPInputError):
        httputil.HTTPHeaders.parse(text)
    with pytest.raises(httputil.HTTPInputError):
        read_text(text)


@pytest.mark.parametrize("line", ["GET / HTTP/2.0", "GET  / HTTP/1.1", "GET / HTTP/1.1 x", "G(T / HTTP/1.1",
                                  "GET /\x00 HTTP/1.1", "GET"])
def test_malformed_request_lines_are_refused(line: str) -> None:
    with pytest.raises(httputil.HTTPInputError):
        httputil.parse_request_start_line(line)


def test_a_request_is_what_tornados_would_be() -> None:
    start = httputil.parse_request_start_line("POST /v1/chat/completions?a=1&b= HTTP/1.1")
    headers = read_text("Host: Example.COM:8080\r\n")
    ours = GatewayRequest(start, headers, _Connection, None)
    tornados = httputil.HTTPServerRequest(connection=_Connection, start_line=start, headers=headers)
    for name in ("method", "uri", "version", "path", "query", "host", "host_name", "remote_ip", "protocol",
                 "arguments", "query_arguments", "body_arguments", "files", "body"):
        assert getattr(ours, name) == getattr(tornados, name), name


@pytest.mark.parametrize(("version", "host"), [("HTTP/1.1", None), ("HTTP/1.1", "a,b"), ("HTTP/1.1", "a b")])
def test_a_missing_or_odd_host_is_refused(version: str, host: str | None) -> None:
    headers = read_text(f"Host: {host}\r\n" if host else "")
    with pytest.raises(httputil.HTTPInputError):
        GatewayRequest(httputil.parse_request_start_line(f"GET / {version}"), headers, _Connection, None)


def test_http_1_0_needs_no_host() -> None:
    request = GatewayRequest(httputil.parse_request_start_line("GET / HTTP/1.0"), read_text(""), _Connection, None)
    assert request.host == "127.0.0.1"


def test_host_checks_are_remembered_only_for_good_values_and_a_bounded_few() -> None:
    """A Host seen before is not checked again; a repeated Host line is refused even when each
    value is good; a client sending ever new values cannot grow what is remembered."""
    for _ in range(2):
        request = GatewayRequest(httputil.parse_request_start_line("GET / HTTP/1.1"),
                                 read_text("Host: Example.COM:8080\r\n"), _Connection, None)
        assert (request.host, request.host_name) == ("Example.COM:8080", "example.com")
    with pytest.raises(httputil.HTTPInputError):
        GatewayRequest(httputil.parse_request_start_line("GET / HTTP/1.1"),
                       read_text("Host: a\r\nHost: a\r\n"), _Connection, None)
    for number in range(1000):
        _host_name(f"h{number}.example")
    assert _host_name.cache_info().currsize <= _HOSTS_KNOWN


@pytest.mark.parametrize("line", [
    "GET / HTTP/1.1", "POST /v1/chat/completions?a=1 HTTP/1.0", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\r",
    "GET /caf\xe9 HTTP/1.1", "GET / HTTP/2.0", "GET / HTTP/0.9", "GET  / HTTP/1.1", "GET / HTTP/1.1 x",
    "G(T / HTTP/1.1", "GET /\x00 HTTP/1.1", "GET /\x7f HTTP/1.1", "GET", "GET / HTTP/1.1x", " GET / HTTP/1.1",
    "GET / HTTP/1.1\rx", "GET / http/1.1", "GET\t/ HTTP/1.1", "",
])
def test_request_lines_are_read_as_tornado_reads_them(line: str) -> None:
    """The connection's own reading of the request line (a head's first line, without its LF)
    accepts exactly what Tornado's parse_request_start_line does, remembered or not."""
    try:
        tornados: httputil.RequestStartLine | None = httputil.parse_request_start_line(line.rstrip("\r"))
    except httputil.HTTPInputError:
        tornados = None
    for read in (request_line, _request_line):
        try:
            ours: httputil.RequestStartLine | None = read(line)
        except httputil.HTTPInputError:
            ours = None
        assert ours == tornados


def test_lines_read_are_remembered_only_when_good_short_and_a_bounded_few() -> None:
    """A kept-alive client's repeated lines are read once; a malformed line is read (and
    refused) each time; a long line is never kept; ever new lines cannot grow what is kept."""
    _known_field.cache_clear()
    for _ in range(2):
        assert read_text("Host: x\r\nContent-Type: application/json\r\n")["content-type"] == "application/json"
    assert _known_field.cache_info().hits == 2
    for _ in range(2):
        with pytest.raises(httputil.HTTPInputError):
            read_text("Bad Name: y\r\n")
    assert _known_field.cache_info().currsize == 2
    long = "X-Long: " + "a" * _LINE_REMEMBERED
    assert read_text(long + "\r\n")["x-long"] == "a" * _LINE_REMEMBERED
    assert _known_field.cache_info().currsize == 2
    for number in range(2 * _LINES_KNOWN):
        read_text(f"X-N: {number}\r\n")
        request_line(f"GET /{number} HTTP/1.1")
    assert _known_field.cache_info().currsize <= _LINES_KNOWN
    assert _known_request_line.cache_info().currsize <= _LINES_KNOWN


def test_headers_written_directly_are_what_every_method_reads() -> None:
    """The hot paths write Headers' field lists directly; no method may answer with a value
    joined before such a write (HTTPHeaders caches joined values, Headers does not)."""
    headers = Headers({"Content-Type": ["text/html"]})
    assert headers["content-type"] == "text/html"
    headers._as_list["Content-Type"] = ["application/json"]
    headers.add("set-cookie", "a=1")
    headers.add("Set-Cookie", "b=2")
    assert headers["Set-Cookie"] == "a=1,b=2"
    headers._as_list["Set-Cookie"].append("c=3")
    assert headers["set-cookie"] == headers.get("SET-COOKIE") == "a=1,b=2,c=3"
    assert headers["Content-Type"] == "application/json" and "content-type" in headers
    headers["x-request-id"] = "r1"
    assert list(headers.get_all()) == [("Content-Type", "application/json"), ("Set-Cookie", "a=1"),
                                       ("Set-Cookie", "b=2"), ("Set-Cookie", "c=3"), ("X-Request-Id", "r1")]
    del headers["set-cookie"]
    assert "Set-Cookie" not in headers and headers.get("Set-Cookie") is None and len(headers) == 2
    assert dict(headers.copy()) == {"Content-Type": "application/json", "X-Request-Id": "r1"}


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody", b"GET / HTTP/1.1\nHost: x\n\nbody", b"GET / HTTP/1.1\r\nHost: x\n\r\n",
    b"GET / HTTP/1.1\nHost: x\r\n\n", b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\r\n\r\n", b"\r\n\r\n",
    b"\n\n", b"\r\n\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n\r\n",
])
def test_a_head_ends_where_crlf_or_lf_lines_end(raw: bytes) -> None:
    """The head's end is found from its LF (a byte search), with the CR before it if any: the
    same size and end as the search for `\\r?\\n\\r?\\n` gives."""
    buffer = bytearray(raw)
    expected = re.search(rb"\r?\n\r?\n", raw)
    found = _HEAD_END.search(buffer)
    assert (found is None) == (expected is None)
    if found is not None and expected is not None:
        assert (_head_size(buffer, found), found.end()) == (expected.start(), expected.end())


def test_an_answer_head_is_its_lines_and_no_field_can_split_it() -> None:
    fields = {"Content-Type": ["application/json"], "Set-Cookie": ["a=1", "b=2"], "X-Empty": [""]}
    assert _answer_head(200, "OK", fields) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                               b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty: \r\n\r\n")
    assert _answer_head(204, "No Content", {}) == b"HTTP/1.1 204 No Content\r\n\r\n"
    for name, value in (("X-A", "a\r\nX-Injected: 1"), ("X-A", "a\nb"), ("X-A", "a\rb"), ("X-A\r\nX-B", "1")):
        with pytest.raises(ValueError):
            _answer_head(200, "OK", {name: [value]})
