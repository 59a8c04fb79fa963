"""The access line's numbers (handlers.base.access_entry): the very floats round() gave them."""

from __future__ import annotations

import random
import re
import time

from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from dsl.table import Route
from handlers.base import access_entry

_REQUEST = HTTPServerRequest(start_line=RequestStartLine("POST", "/v1/chat/completions", "HTTP/1.1"),
                             headers=HTTPHeaders({"Host": "gateway"}))
_ROUTE = Route("POST /v1/chat/completions", frozenset({"POST"}), "/v1/chat/completions",
               re.compile("/v1/chat/completions"), "chat", "openai", True, False, {}, 1)


def _entry(elapsed: float, ttfb: float | None) -> dict:
    return access_entry(_REQUEST, _ROUTE, 200, "rid", elapsed, ttfb=ttfb)


def test_durations_are_rounded_to_two_digits_of_ms() -> None:
    """A duration is a difference of two time.time() values: its ms come out as round(ms, 2)
    gives them, exact ties (to even) and long requests included."""
    draw = random.Random(14)
    now = time.time()
    for n in range(5000):
        start = now + draw.uniform(-1e6, 1e6)
        seconds = draw.randrange(0, 2**16) / 64 if n % 4 == 0 else draw.expovariate(2.0)
        elapsed = (start + seconds) - start
        ttfb = (start + seconds / 3) - start
        entry = _entry(elapsed, ttfb)
        assert entry["duration_ms"] == round(elapsed * 1000, 2), elapsed
        assert entry["ttfb_ms"] == round(ttfb * 1000, 2), ttfb
    assert _entry(0.015625, None)["ttfb_ms"] == 15.62  # a tie: to even, as round() (not 15.63)


def test_the_time_is_now_to_the_ms() -> None:
    before = time.time()
    ts = _entry(0.001, None)["ts"]
    after = time.time()
    assert round(before, 3) <= ts <= round(after, 3)
    assert ts == round(ts, 3)
