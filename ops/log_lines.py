"""Log records as single lines: control characters escaped, length bounded.

Log messages carry values a client chose (model names, paths, request ids); a
newline in one would end the record and start a forged one. Escaping once, in
the formatter every record goes through, means no call site can forget.
"""

from __future__ import annotations

import logging

MAX_RECORD = 16 * 1024  # characters of one formatted record, traceback included
_ESCAPES: dict[int, str] = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))
} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\\"): "\\\\",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


class OneLineFormatter(logging.Formatter):
    """A Formatter whose every record is one line, escaped as repr() would, at most MAX_RECORD long."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).translate(_ESCAPES)
        if len(line) > MAX_RECORD:
            line = f"{line[:MAX_RECORD]}... ({len(line) - MAX_RECORD} more characters)"
        return line
