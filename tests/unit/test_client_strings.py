"""The log formatter gateway.py installs: client-chosen strings in a record stay on one escaped, bounded line."""

from __future__ import annotations

import logging
import sys

FORGED = '{"ts": 1, "request_id": "forged", "status": 200, "forged": true}'


def test_the_log_formatter_escapes_and_bounds_every_record() -> None:
    """What gateway.py installs for every logger: one line per record, whatever the values."""
    from ops.log_lines import MAX_RECORD, OneLineFormatter

    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("gateway.chat", logging.WARNING, __file__, 1,
                               "upstream %s failed mid-stream: %s", (f"mock/x\n{FORGED}\r\x85\u2028\\", "boom"), None)
    line = formatter.format(record)
    assert line == ("WARNING gateway.chat: upstream mock/x\\n" + FORGED
                    + "\\r\\x85\\u2028\\\\ failed mid-stream: boom")
    assert len(line.splitlines()) == 1
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("gateway", logging.ERROR, __file__, 1, "x" * 20_000, None, sys.exc_info())
    line = formatter.format(record)
    assert len(line.splitlines()) == 1 and len(line) < MAX_RECORD + 100 and line.endswith("more characters)")


def test_answerheader_values_refuse_exactly_line_breaks_and_controls() -> None:
    """A value with any control character but HTAB (CR, LF and NUL among them) or DEL is
    refused, whichever check sees it first (the quick ASCII one or the pattern); every other
    character of Latin-1 passes."""
    import pytest

    from handlers.base import header_value

    for code in range(256):
        value = f"a{chr(code)}b"
        if code < 0x20 and code != 0x09 or code == 0x7F:
            with pytest.raises(ValueError):
                header_value(value)
        else:
            assert header_value(value) == value
    assert header_value(204) == "204"


def test_the_gateways_own_answer_heads_name_their_headers_as_set_header_would() -> None:
    """A head of the gateway's own (not the provider's) is taken name for name by `begin`,
    without normalizing: each name is already what set_header would make of it."""
    from handlers.chat import _ChatReading
    from handlers.headers import normalize_name
    from handlers.tool_stream import STREAM_HEADERS

    class Answer:
        status = 200
        headers = {"Content-Type": "text/event-stream"}

    head = _ChatReading.head(None, Answer())  # type: ignore[arg-type]
    for name, _ in (*STREAM_HEADERS, *head.headers):
        assert normalize_name(name) == name
