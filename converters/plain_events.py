"""Anthropic stream events whose meaning their bytes alone give, so that no JSON is parsed.

Most of an Anthropic stream is text deltas written the same way every time, and a few
events that change nothing for a reader (a ping, the start of an empty text block, the
end of any block). Written as Anthropic writes them, with text that holds no quote,
backslash or control character (such text is the same bytes in any JSON string), they
are matched by pattern: parsing them would tell nothing more. Both the stream start's
judge (converters/stream_start.py) and the Anthropic-to-OpenAI converter
(converters/chat_streams.py) read them so. Each pattern is one event without the blank
line that ends it; anything else is parsed as before.
"""

from __future__ import annotations

import re

_INDEX = rb'"index":(?:0|[1-9][0-9]*)'  # as JSON writes it: a leading zero does not parse

TEXT_DELTA_HEAD = (
    rb'(?:event: content_block_delta\n)?data: *\{"type":"content_block_delta",' + _INDEX
    + rb',"delta":\{"type":"text_delta","text":"'
)
"""A text delta up to its text."""

PLAIN_TEXT = rb'[^"\\\x00-\x1f]+'
"""Non-empty text with no quote, backslash or control character: the same bytes in any JSON string."""

TEXT_DELTA = TEXT_DELTA_HEAD + PLAIN_TEXT + rb'"\}\}'
"""A text delta with non-empty plain text: content."""

QUIET = (
    rb'(?:event: ping\n)?data: *\{"type":"ping"\}'
    + rb'|(?:event: content_block_start\n)?data: *\{"type":"content_block_start",' + _INDEX
    + rb',"content_block":\{"type":"text","text":""\}\}'
    + rb'|(?:event: content_block_stop\n)?data: *\{"type":"content_block_stop",' + _INDEX + rb"\}"
)
"""A ping, the start of an empty text block, the end of a block: no content, no change."""

PLAIN_EVENT = re.compile(rb"(?P<text>" + TEXT_DELTA + rb")|" + QUIET)
"""One event (fullmatch it): group `text` matched for a text delta, none for a quiet event."""
