"""Anthropic stream events whose meaning their bytes alone give, so that no JSON is parsed.

Most of an Anthropic stream is text deltas written the same way every time, and a few
events that change nothing for a reader (a ping, the start of an empty text block, the
end of any block). Written as Anthropic writes them, with text that holds no quote,
backslash or control character (such text is the same bytes in any JSON string), they
are matched by pattern: parsing them would tell nothing more. Both the stream start's
judge (converters/stream_start.py) and the Anthropic-to-OpenAI converter
(converters/chat_streams.py) read them so. Each pattern is one event without the blank
line that ends it; anything else is parsed as before. The converter reads runs of them with
plain_run, which tells the forms Anthropic writes by their exact bytes.
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

# The usual forms exactly, as Anthropic writes them for blocks 0-9: most events are told by a
# slice and a set lookup (a few hundred instructions) rather than by the patterns, which cost
# the regex engine some 25 instructions a byte.
TEXT_DELTA_HEADS = frozenset(
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    b'"delta":{"type":"text_delta","text":"' % index for index in range(10))
"""A text delta up to its text, in the usual form (an `event:` line, no spaces, blocks 0-9)."""

TEXT_DELTA_HEAD_SIZE = len(next(iter(TEXT_DELTA_HEADS)))
"""The length of each of TEXT_DELTA_HEADS."""

ASCII_TEXT_DELTA_END = re.compile(rb'([ !#-\[\]-~]+)"\}\}\n\n')
"""What follows a usual text delta head in a whole event with printable ASCII text (plain text,
and as nearly all English text is): the text (group 1), the event's end and its blank line.
Matched from the head's end (fullmatch(event, TEXT_DELTA_HEAD_SIZE)) it tells the rest of an
event in a few instructions a byte of text, and such text needs no UTF-8 check."""
_TEXT_DELTA_END = b'"}}'
QUIET_EVENTS = frozenset((
    b'event: ping\ndata: {"type":"ping"}',
    *(b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
      b'"content_block":{"type":"text","text":""}}' % index for index in range(10)),
    *(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}' % index
      for index in range(10)),
))
"""The quiet events in the usual form (an `event:` line, no spaces, blocks 0-9), exactly."""
# A plain event in a less usual form (other spacing, a longer index, no `event:` line): group
# 1 a text delta's text. The lookahead turns any other event down after a few bytes.
_ANY_FORM = re.compile(
    rb"(?=data:|event: (?:content_block_|ping\n))"
    + rb"(?:" + TEXT_DELTA_HEAD + rb"(" + PLAIN_TEXT + rb')"\}\}|' + QUIET + rb")"
)
_MESSAGE_EVENT = b"event: m"  # message_start, message_delta, message_stop
_PLAIN_TEXT = re.compile(PLAIN_TEXT)
_QUOTE, _BACKSLASH = ord('"'), ord("\\")  # as ints, `in` is a memchr; a bytes needle costs ten times more


def plain_run(events: list[bytes], index: int, end: int) -> tuple[list[bytes], int]:
    """The texts of the plain events among events[index:end] (each without its blank line)
    that follow each other from `index`, and the index of the first event that is not plain.

    An event in the usual form costs a few slices and a set lookup (or a comparison with the
    head of the text delta before it, which costs less: the set hashes the head); its text is
    checked for quotes and backslashes with the others, at once. A text that holds a control
    character or is not UTF-8 (never from Anthropic) is left out, as parsing its event would
    fail and drop it."""
    texts, stop = _run(events, index, end, False)
    if not texts:
        return texts, stop
    joined = b" ".join(texts)  # a space between them ends any character, for _printable
    if _QUOTE in joined or _BACKSLASH in joined:  # a text is not plain: the run ends before it
        texts, stop = _run(events, index, end, True)
        joined = b" ".join(texts)
    if texts and not _printable(joined):
        texts = [text for text in texts if _PLAIN_TEXT.fullmatch(text) and utf8(text)]
    return texts, stop


def _run(events: list[bytes], index: int, end: int, strict: bool) -> tuple[list[bytes], int]:
    """plain_run's walk: `strict`, a usual text delta whose text holds a quote or a backslash
    ends it (no pattern would match the event: it is parsed); else such texts are taken too."""
    texts: list[bytes] = []
    head = b""  # the last usual text delta's head: the next one's is most likely the same
    while index < end:
        event = events[index]
        start = event[:TEXT_DELTA_HEAD_SIZE]
        if (start == head or start in TEXT_DELTA_HEADS) and event[-3:] == _TEXT_DELTA_END:
            head = start
            text = event[TEXT_DELTA_HEAD_SIZE:-3]
            if not text or (strict and (_QUOTE in text or _BACKSLASH in text)):
                break  # an empty text gives no content: the event is parsed
            texts.append(text)
        elif event not in QUIET_EVENTS:
            if event[:8] == _MESSAGE_EVENT:  # never plain: turned down without calling the pattern
                break
            plain = _ANY_FORM.fullmatch(event)
            if plain is None:
                break
            if plain[1] is not None:
                texts.append(plain[1])
        index += 1
    return texts, index


def _printable(joined: bytes) -> bool:
    """Whether texts joined by spaces are all printable UTF-8 (so without a control character).
    Nearly all are; for the others (a few printable-looking characters are not printable
    either) each text is checked alone."""
    try:
        return joined.decode().isprintable()
    except UnicodeDecodeError:
        return False


def utf8(text: bytes) -> bool:
    """Whether `text` is valid UTF-8, as orjson requires of what it parses."""
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True
