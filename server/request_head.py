"""A request's head read into Tornado's types, at a fraction of what Tornado's own readers cost.

`HTTPHeaders.parse` checks each line with several regular expressions and method calls
(about 40 µs for a five-line head), and `HTTPServerRequest()` walks its deprecated
arguments and deep-copies an empty query. Here the request line and each header line are
one match of one pattern that accepts exactly what Tornado accepts (RFC 9110 field names
and values, CRLF or bare LF, no folding), and the request is built with Tornado's checks
on Host. What fails to read raises `httputil.HTTPInputError`, answered 400 by the connection.

A client sends the same lines request after request (its request line, Host, Content-Type,
Authorization...): a line read once is remembered, with what was read of it, for the last
few hundred short lines, so that a kept-alive client's head costs a dictionary lookup a line.
Credential lines (Authorization, x-api-key) are kept too: only in this process's memory,
which holds every provider key in the clear anyway, and never written anywhere. Leaving them
out cost 10 K instructions a request (1.3 %): a test of each line's name in Python.
"""

from __future__ import annotations

import copy
import functools
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tornado import httputil
from tornado.escape import parse_qs_bytes

from handlers.headers import Headers

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# A field line without its LF: its name, then its value up to the CR before that LF if any,
# with no control character other than HTAB (a CR or NUL inside a value is an error).
_FIELD_LINE = re.compile(rf"([{_TCHARS}]+):([\t\x20-\x7e\x80-\xff]*)\r?")
# The request line without its LF, as Tornado's parse_request_start_line accepts it (method,
# target, HTTP/1.x; CRs before its LF ignored).
_REQUEST_LINE = re.compile(
    rf"({httputil._ABNF.method.pattern}) ({httputil._ABNF.request_target.pattern}) (HTTP/1\.[0-9])\r*"
)
_QUERY_FIELDS = 1000  # most query arguments parsed (Tornado's bound on urlencoded bodies)
_HOSTS_KNOWN = 64  # Host values whose checks are remembered (a client sends the same one each time)
_LINES_KNOWN = 256  # request and header lines remembered with what was read of them
_LINE_REMEMBERED = 256  # characters of the longest line remembered: at most 64 KiB in all


def request_line(line: str) -> httputil.RequestStartLine:
    """The head's first line (without its LF) as Tornado reads it."""
    return _known_request_line(line) if len(line) <= _LINE_REMEMBERED else _request_line(line)


def read_fields(lines: list[str]) -> Headers:
    """The header lines of a head (each without its LF, a CR before it allowed) as HTTPHeaders;
    values are stripped of surrounding spaces and tabs, repeated names keep every value in order."""
    headers = Headers()
    lists: dict[str, list[str]] = headers._as_list  # what HTTPHeaders reads its values from
    for line in lines:
        name, value = _known_field(line) if len(line) <= _LINE_REMEMBERED else _field(line)
        if name in lists:
            lists[name].append(value)
        else:
            lists[name] = [value]
    return headers


def _request_line(line: str) -> httputil.RequestStartLine:
    found = _REQUEST_LINE.fullmatch(line)
    if found is None:
        raise httputil.HTTPInputError("malformed request line")
    return httputil.RequestStartLine(*found.groups())


def _field(line: str) -> tuple[str, str]:
    """A header line's name (in Http-Header-Case, as HTTPHeaders keys and looks up names) and value."""
    found = _FIELD_LINE.fullmatch(line)
    if found is None:
        raise httputil.HTTPInputError("malformed header line")
    return httputil._normalize_header(found[1]), found[2].strip(" \t")


# What a line reads as, remembered (a line that fails to read raises, and is not); a hostile
# client sending ever new lines can only evict, never grow, what is kept.
_known_request_line = functools.lru_cache(maxsize=_LINES_KNOWN)(_request_line)
_known_field = functools.lru_cache(maxsize=_LINES_KNOWN)(_field)


class GatewayRequest(httputil.HTTPServerRequest):
    """An HTTPServerRequest made from a read head: Tornado's checks on Host (present in
    HTTP/1.1, plain, single), its query parsed only when there is one. `head_size`: bytes
    of the request line and headers as they came (the Guard's max_header_size)."""

    # What a request without a query (or a form, which the gateway never parses) holds: empty,
    # read-only and shared, rather than four dictionaries made per request.
    files: Mapping[str, list[httputil.HTTPFile]] = MappingProxyType({})  # type: ignore[assignment]
    arguments = query_arguments = body_arguments = MappingProxyType({})  # type: ignore[assignment]
    _finish_time = None  # set by nothing: request_time() is the time since the request began

    def __init__(
        self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders,
        connection: Any, server_connection: object, head_size: int = 0,
    ) -> None:
        self.head_size = head_size
        self.method, self.uri, self.version = start_line
        self.headers = headers
        self.body = b""
        context = connection.context
        self.remote_ip = context.remote_ip
        self.protocol = context.protocol
        hosts = headers._as_list.get("Host")
        if hosts is not None:
            host = hosts[0]
            host_name = _host_name(host) if len(hosts) == 1 else None
            if host_name is None:
                raise httputil.HTTPInputError("invalid or repeated Host header")
        elif self.version == "HTTP/1.0":
            host = host_name = "127.0.0.1"
        else:
            raise httputil.HTTPInputError("missing Host header")
        self.host = host
        self.host_name = host_name
        self.connection = connection
        self.server_connection = server_connection
        self._start_time = time.time()
        self.path, _, self.query = self.uri.partition("?")
        if self.query:
            try:
                self.arguments = parse_qs_bytes(
                    self.query, keep_blank_values=True, max_num_fields=_QUERY_FIELDS
                )
            except Exception as exc:
                raise httputil.HTTPInputError("invalid query string") from exc
            self.query_arguments = copy.deepcopy(self.arguments)


@functools.lru_cache(maxsize=_HOSTS_KNOWN)
def _host_name(host: str) -> str | None:
    """`host` without its port, lower-cased; None when Tornado would refuse it (a list, or not
    RFC 3986's host[:port]). Remembered for the last few values: a client sends the same
    Host on every request, and a hostile one can only evict, never grow, what is kept."""
    if "," in host or not httputil._ABNF.host.fullmatch(host):
        return None
    return httputil.split_host_and_port(host.lower())[0]
