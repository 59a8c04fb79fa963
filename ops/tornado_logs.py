"""Tornado's own log lines, with nothing a client sent in them.

Tornado logs a malformed request at INFO with the offending text quoted
("Malformed HTTP message from 10.0.0.7: Invalid header value 'Bearer sk-…\\r'"),
and uncaught exceptions with their message; either can quote a header value, a
token among them. Each record keeps its fixed format, its numbers and the
connection's address; every other argument becomes its type name, and a
traceback keeps its frames but not the exception's message.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

from tornado.httpserver import _HTTPRequestContext  # what Tornado logs as "from %s": an address

TORNADO_LOGGERS = ("tornado.general", "tornado.application", "tornado.access")


class WithholdClientText(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_safe(arg) for arg in record.args)
        elif record.args:  # a mapping: logged as %(name)s
            record.args = {key: _safe(value) for key, value in record.args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = _traceback(record.exc_info[0], record.exc_info[2])
        return True


def _safe(arg: object) -> object:
    if isinstance(arg, _HTTPRequestContext):
        return str(arg)  # the client's address
    if isinstance(arg, bool | int | float) or arg is None:
        return arg
    return f"<{type(arg).__name__}>"


def _traceback(kind: type[BaseException], tb: TracebackType | None) -> str:
    frames = "".join(traceback.format_tb(tb))
    return f"Traceback (most recent call last):\n{frames}{kind.__qualname__} (message withheld)"


def install() -> None:
    """Filter every record of Tornado's loggers (they log on these names directly)."""
    for name in TORNADO_LOGGERS:
        logging.getLogger(name).addFilter(WithholdClientText())
