"""A stream's start held until its first content event (converters/stream_start.py)."""

from __future__ import annotations

import pytest

from converters.stream_start import MAX_HELD, StreamRefused, StreamStart, _fields, fields_by_lines

ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
TEXT = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
OPENAI_ERROR = b'data: {"error":{"message":"over capacity","type":"server_error"}}\n\n'
START = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
EMPTY_BLOCK = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
               b'"content_block":{"type":"text","text":""}}\n\n')
DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
         b'"delta":{"type":"text_delta","text":"Hi"}}\n\n')
OVERLOADED = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'


def start(fmt: str = "openai") -> StreamStart:
    return StreamStart(fmt, 200, lambda text: text.replace("sk-secret", "***"))


def test_the_role_chunk_is_held_and_released_with_the_first_text() -> None:
    watch = start()
    assert watch.feed(ROLE) is None
    assert watch.feed(TEXT) == ROLE + TEXT


def test_a_stop_reason_alone_is_an_answer() -> None:
    watch = start()
    assert watch.feed(ROLE + STOP) == ROLE + STOP


def test_an_event_split_across_chunks_is_judged_once_whole() -> None:
    watch = start()
    data = ROLE + TEXT
    out = [watch.feed(data[i:i + 7]) for i in range(0, len(data), 7)]
    assert [o for o in out if o is not None] == [data[: len(out) * 7][: len(data)]]


def test_an_error_before_content_refuses_the_stream_with_its_status() -> None:
    watch = start()
    assert watch.feed(ROLE) is None
    with pytest.raises(StreamRefused) as refused:
        watch.feed(OPENAI_ERROR)
    assert refused.value.status == 500
    assert refused.value.error is not None and refused.value.error.message == "over capacity"


def test_an_anthropic_overloaded_event_after_an_empty_block_is_a_529() -> None:
    watch = start("anthropic")
    assert watch.feed(START + PING + EMPTY_BLOCK) is None
    with pytest.raises(StreamRefused) as refused:
        watch.feed(OVERLOADED)
    assert refused.value.status == 529


def test_anthropic_text_releases_everything_held() -> None:
    watch = start("anthropic")
    assert watch.feed(START + PING) is None
    assert watch.feed(EMPTY_BLOCK + DELTA) == START + PING + EMPTY_BLOCK + DELTA


def test_a_stream_ending_while_held_is_refused_without_an_error() -> None:
    watch = start()
    watch.feed(ROLE)
    with pytest.raises(StreamRefused) as refused:
        watch.end()
    assert refused.value.status == 200 and refused.value.error is None


def test_the_key_is_scrubbed_from_an_error_event() -> None:
    watch = start()
    with pytest.raises(StreamRefused) as refused:
        watch.feed(b'data: {"error":{"message":"bad key sk-secret","type":"authentication_error"}}\n\n')
    assert refused.value.status == 401 and refused.value.error.message == "bad key ***"


def test_a_preamble_past_the_limit_is_relayed_as_it_is() -> None:
    watch = start()
    comment = b": " + b"x" * 1000 + b"\n\n"
    out = None
    for _ in range(MAX_HELD // len(comment) + 2):
        out = watch.feed(comment)
        if out is not None:
            break
    assert out is not None and len(out) > MAX_HELD


STOP_BLOCK = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'


@pytest.mark.parametrize(("written", "content"), [(PING, False), (EMPTY_BLOCK, False), (STOP_BLOCK, False),
                                                  (DELTA, True)])
def test_anthropic_events_known_by_their_bytes_are_judged_as_parsing_judges_them(written: bytes,
                                                                                 content: bool) -> None:
    """Events as Anthropic writes them are judged without parsing (converters/plain_events.py);
    the same events spaced otherwise are parsed: both give one judgement."""
    spaced = written.replace(b'":', b'": ').replace(b'",', b'", ')
    assert spaced != written
    for event in (written, spaced):
        assert (start("anthropic").feed(START + event) is not None) is content, event


@pytest.mark.parametrize("text", [b"Hi", b"", b"tab\there", b"back\\slash", b"ends in \\", "d\u00e9j\u00e0".encode(),
                                  b"\xff\xfe", b"ctl\x01"])
def test_an_anthropic_text_delta_with_no_quote_in_its_text_is_content_whatever_the_text(text: bytes) -> None:
    """A text delta as Anthropic writes it, whose text holds no quote, is judged content by its
    bytes: it is that delta, or no JSON at all (relayed either way, as parsing judges it)."""
    event = DELTA.replace(b'"text":"Hi"', b'"text":"' + text + b'"')
    assert start("anthropic").feed(START + PING + event) == START + PING + event


def test_a_text_delta_whose_text_closes_its_string_is_parsed_and_an_error_in_it_refused() -> None:
    """A quote in the text is not judged by the bytes: the event is parsed, and one that turns
    out to carry an error at its top level refuses the stream."""
    text = b'x"},"error":{"type":"overloaded_error","message":"o'
    event = DELTA.replace(b'"text":"Hi"', b'"text":"' + text + b'"')
    with pytest.raises(StreamRefused) as refused:
        start("anthropic").feed(START + event)
    assert refused.value.status == 529


def test_an_error_named_event_is_refused_whatever_its_data() -> None:
    with pytest.raises(StreamRefused):
        start("anthropic").feed(START + b'event: error\ndata: {"type":"ping"}\n\n')


@pytest.mark.parametrize("event", [
    b'data: {"choices":[]}\nevent: error',  # a data line, then the name: lines to split
    b'data: {"choices":[]}\revent: error',  # lines ended by a lone CR
    b'data: {"choices":[]}\r\nevent: error',
])
def test_an_error_name_after_the_data_line_is_refused(event: bytes) -> None:
    """The usual event, one data line, is read without splitting lines; an event with more
    lines, however they end, is split, and its name read."""
    with pytest.raises(StreamRefused):
        start().feed(ROLE + event + b"\n\n")


@pytest.mark.parametrize("written", [TEXT, TEXT.replace(b"data: ", b"data:"), TEXT.replace(b"data: ", b"data:   "),
                                     TEXT.replace(b"}]}", b"}]}  ")])
def test_a_one_line_event_is_judged_however_spaced(written: bytes) -> None:
    watch = start()
    assert watch.feed(ROLE) is None
    assert watch.feed(written) == ROLE + written


def test_crlf_events_are_held_and_released_as_lf_ones() -> None:
    role, text = ROLE.replace(b"\n", b"\r\n"), TEXT.replace(b"\n", b"\r\n")
    watch = start()
    assert watch.feed(role) is None
    assert watch.feed(text) == role + text
    with pytest.raises(StreamRefused):
        start().feed(role + OPENAI_ERROR.replace(b"\n", b"\r\n"))


def test_done_before_content_is_not_content() -> None:
    watch = start()
    assert watch.feed(ROLE + b"data: [DONE]\n\n") is None
    with pytest.raises(StreamRefused):
        watch.end()


@pytest.mark.parametrize("event", [
    b'data: {"a":1}', b'data:{"a":1} ', b"data: [DONE]", b"data:", b": comment", b"",  # one line
    b'event: ping\ndata: {"type":"ping"}', b"event:error\ndata:  x ", b"event: e\ndata:",  # a name, one data line
    b"event: e\ndata: a\ndata: b", b"data: a\ndata: b", b"data: a\nevent: error",  # more lines: split
    b"event: e\nid: 1\ndata: a", b"id: 1\ndata: a", b"event: e\n: c\ndata: a", b"event: e\nevent: f\ndata: a",
    b"event: e\r\ndata: a", b"data: a\revent: error", b"event: e\rdata: a",  # a CR anywhere: split
])
def test_an_events_fields_read_without_splitting_lines_are_those_its_lines_give(event: bytes) -> None:
    assert _fields(event) == fields_by_lines(event)


def test_a_message_start_is_held_unparsed_unless_it_holds_an_error() -> None:
    """Anthropic's message_start is the message's metadata, never content: held without being
    parsed; one that holds an error (no provider sends one) is parsed, and refused."""
    watch = start("anthropic")
    assert watch.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n') is None
    assert watch.feed(b'event: message_start\ndata: not json at all\n\n') is None
    assert watch.feed(DELTA) is not None
    with pytest.raises(StreamRefused) as refused:
        start("anthropic").feed(b'event: message_start\ndata: {"type":"error","error":{"type":"overloaded_error",'
                                b'"message":"Overloaded"}}\n\n')
    assert refused.value.status == 529
    with pytest.raises(StreamRefused):  # a name after the data line: its lines are read
        start("anthropic").feed(b'event: message_start\ndata: {"type":"message_start"}\nevent: error\n\n')


@pytest.mark.parametrize("event", [
    ROLE, TEXT, STOP, OPENAI_ERROR,  # one line `data: {...}`: parsed at once
    b'data: {"choices":[{"index":0,"delta":{"refusal":"no"}}]}', b'data: {"choices":[]}', b"data: {not json}",
    b'data: {"a":\ndata: 1}', b'data: {"choices":[]} ', b"data:{}", b"data: [DONE]",  # the rest: by _fields
    b'event: error\ndata: {"choices":[]}', b'data: {"choices":[{"delta":{"content":"x"}}]}\nevent: error',
])
def test_a_one_line_openai_event_parsed_at_once_is_judged_as_its_fields_would_have_it(event: bytes) -> None:
    outcomes: list[bool | int] = []
    for judge in (start()._judge_lf, start()._judge):
        try:
            outcomes.append(judge(event.removesuffix(b"\n\n")))
        except StreamRefused as refused:
            outcomes.append(refused.status)
    assert outcomes[0] == outcomes[1]


def _outcome(reads: list[bytes], fmt: str = "openai") -> tuple[str, int]:
    """How a stream start fed `reads` ends: released, refused (with its status) or still held."""
    watch = start(fmt)
    try:
        for read in reads:
            if watch.feed(read) is not None:
                return "released", 0
    except StreamRefused as refused:
        return "refused", refused.status
    return "held", 0


HELLO = TEXT.replace(b"Hi", b"an error, \\\"quoted\\\"")  # content that names an error, and escapes


@pytest.mark.parametrize("events", [
    (ROLE, TEXT), (ROLE, OPENAI_ERROR), (TEXT, OPENAI_ERROR), (ROLE, ROLE, OPENAI_ERROR), (ROLE, ROLE),
    (STOP, OPENAI_ERROR), (ROLE, b"data: [DONE]\n\n"), (TEXT, ROLE, OPENAI_ERROR), (ROLE, ROLE, TEXT),
    (OPENAI_ERROR, TEXT), (HELLO, OPENAI_ERROR), (ROLE, HELLO), (b'data: {"a":1}\n\n', OPENAI_ERROR),
    (b"data: {not json}\n\n", OPENAI_ERROR), (b'data: {"choices":[]}\n\n', b"data: {not json}\n\n"),
])
def test_a_read_of_many_events_ends_as_its_events_one_by_one_would(events: tuple[bytes, ...]) -> None:
    """A read's first OpenAI event, when plainly no error, is judged after the others (it is the
    role chunk, seldom content, and the read goes out whole when any is): the outcome is the same."""
    assert _outcome([b"".join(events)]) == _outcome(list(events))


# Events of every kind the quick reading of a read (its first two events found by their line
# breaks, the first one judged last) tells apart from the rest.
_EVENTS = (
    ROLE, TEXT, STOP, OPENAI_ERROR, HELLO, b'data: {"a":1}\n\n', b"data: {not json}\n\n", b"data: [DONE]\n\n",
    b'data: {"choices":[]}\n\n', b'data:{"choices":[{"delta":{"content":"x"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"x"}}]} \n\n', b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n\n',
    b'data: {"choices":[{"delta":{"content":"x"}}]}\nevent: error\n\n', b'event: error\ndata: {"choices":[]}\n\n',
    b'data: {"choices":[{"delta":{"content":"error"}}]}\n\n', b'data: {"choices":[{"delta":{"role":"error"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"\\u0022error\\u0022"}}]}\n\n', b": comment\n\n", b"data: {}\n\n",
    b'data: {"\\u0065rror":{"message":"m","type":"rate_limit_error"}}\n\n', b'data: {"choices":[1,{"delta":{}}]}\n\n',
)


def test_a_read_of_any_events_ends_as_its_events_one_by_one_would() -> None:
    """Every read of one to three of _EVENTS: judged whole (the quick reading, where it applies)
    and event by event (each read one event: judged in order, every event by its own judge)."""
    reads = [(a,) for a in _EVENTS] + [(a, b) for a in _EVENTS for b in _EVENTS]
    reads += [(a, b, c) for a in _EVENTS[:10] for b in _EVENTS for c in _EVENTS[:10]]
    for events in reads:
        assert _outcome([b"".join(events)]) == _outcome(list(events)), events


USUAL_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
               b'"role":"assistant","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}\n\n')
# Events of every kind the quick reading of an Anthropic read (message_start, the usual preamble,
# a text delta, each told by its bytes) tells apart from the rest, the hostile ones included.
_ANTHROPIC_EVENTS = (
    USUAL_START, START, EMPTY_BLOCK, PING, DELTA, OVERLOADED,
    EMPTY_BLOCK.replace(b'"index":0', b'"index":1'), EMPTY_BLOCK.replace(b'"text":""', b'"text":"Hi"'),
    DELTA.replace(b"Hi", b""), DELTA.replace(b"Hi", b'Hi\\"'), DELTA.replace(b"Hi", b'x"},"error":{"type":"api_error"}}'),
    DELTA.replace(b"Hi", b"caf\xc3\xa9"), DELTA.replace(b"Hi", b"H\ti"), DELTA.replace(b'"}}\n\n', b'"} }\n\n'),
    DELTA.replace(b"\n\n", b"\nevent: error\n\n"), DELTA.replace(b"Hi", b"H\ni"), DELTA.replace(b'"index":0', b'"index":3'),
    USUAL_START.replace(b'"msg_1"', b'"error"'), USUAL_START.replace(b'"id"', b'"error"'),
    USUAL_START.replace(b'"message":', b'"error":{"type":"rate_limit_error"},"message":'),
    USUAL_START.replace(b"\n\n", b"\nevent: error\n\n"), USUAL_START.replace(b"\n\n", b"\ndata: {}\n\n"),
    USUAL_START.replace(b"data: ", b"data:"), b"event: message_start\ndata: not json\n\n",
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n', b": comment\n\n", PING.replace(b"\n\n", b"\n\n\n"),
)


def test_an_anthropic_read_ends_as_its_events_one_by_one_would() -> None:
    """Every read of one to four of _ANTHROPIC_EVENTS (the usual message_start, preamble and delta
    among them, in every order): judged whole (the quick reading, where it applies) and event by
    event; also as a read of the usual start with the rest."""
    events = _ANTHROPIC_EVENTS
    reads = [(a,) for a in events] + [(a, b) for a in events for b in events]
    reads += [(a, b, c) for a in events[:8] for b in events for c in events]
    reads += [(USUAL_START, EMPTY_BLOCK, PING, d) for d in events]
    reads += [(a, EMPTY_BLOCK, PING, d) for a in events for d in events[:8]]
    for read in reads:
        assert _outcome([b"".join(read)], "anthropic") == _outcome(list(read), "anthropic"), read
