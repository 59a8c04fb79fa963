"""Stream converters give the same output however the upstream bytes are split."""

from __future__ import annotations

import json
import tracemalloc

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.base import Chain, Context
from converters.encoding import encode
from converters.registry import plan
from converters.sse import MAX_EVENT, EventTooLarge, SSEDataReader, SSEFramer, iter_data
from converters.usage import (
    Usage,
    _count,
    _details,
    _event_end,
    usage_from_body,
    usage_from_openai,
    with_stream_usage,
)


def _openai_stream(crlf: bool = False, compact: bool = False) -> bytes:
    """Chunks written as json.dumps writes them (`"usage": {`), or `compact` (`"usage":{`, as most
    providers write them: OpenAIStreamUsage finds those without its pattern)."""
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": w}}], "usage": None} for w in ("Hé", " ☃", " ok")]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                            "prompt_tokens_details": {"cached_tokens": 2},
                                            "completion_tokens_details": {"reasoning_tokens": 1}}})
    sep = "\r\n\r\n" if crlf else "\n\n"
    separators = (",", ":") if compact else None
    text = "".join(f"data: {json.dumps(c, ensure_ascii=False, separators=separators)}{sep}" for c in chunks)
    return (text + f"data: [DONE]{sep}").encode()


STREAM = _openai_stream()


ASKS_FOR_USAGE = {"stream": True, "stream_options": {"include_usage": True}}


def _run(pieces: list[bytes], client: dict | None = None) -> tuple[bytes, tuple[int, int, int, int]]:
    chain = plan("openai", "openai").build(Context(ASKS_FOR_USAGE if client is None else client, "m"))
    out = b"".join(chain.feed(p) for p in pieces) + chain.close()
    usage = chain.converters[1].usage
    return out, (usage.input, usage.output, usage.cached, usage.reasoning)


@pytest.mark.parametrize("compact", [False, True])
def test_unsplit_stream_passes_whole_and_records_usage(compact: bool) -> None:
    stream = _openai_stream(compact=compact)
    out, usage = _run([stream])
    assert out == stream
    assert usage == (5, 3, 2, 1)


@pytest.mark.parametrize("hide", [False, True])
@pytest.mark.parametrize("read", [
    b'data: {"choices":[],"usage":{"prompt_tokens":7}}\n\n',  # compact: read without the pattern
    b'data: {"choices":[],"usage": {"prompt_tokens":7}}\n\n',  # json.dumps' spacing: by the pattern
    b'data: {"choices":[{}],"usage":null}\n\ndata: {"choices":[],"usage":{"prompt_tokens":7}}\n\n',
    b'data: {"choices":[{}],"usage": null}\n\ndata: {"choices":[],"usage" :\t{"prompt_tokens":7}}\n\n',
    b'data: {"choices":[],"usage":\t{"prompt_tokens":7}}\n\n',  # any spacing JSON allows on a line
    b'data: {"a":"\\"usage\\": {"}\n\ndata: {"choices":[],"usage":{"prompt_tokens":7}}\n\n',
])
def test_a_usage_object_is_read_however_it_is_spaced(read: bytes, hide: bool) -> None:
    """A compact object (`"usage":{`) is read without the pattern, and a compact writer's
    `"usage":null` says a read has none; a key spaced any other way is the pattern's to find.
    Either way the object is counted, and cut when hidden."""
    client = {"stream": True} if hide else ASKS_FOR_USAGE
    chain = plan("openai", "openai").build(Context(client, "m"))
    out = chain.feed(read + b"data: [DONE]\n\n")
    assert chain.converters[1].usage.input == 7
    kept = [event for event in read.split(b"\n\n") if event and not (hide and b"prompt_tokens" in event)]
    assert out == b"".join(event + b"\n\n" for event in kept) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
def test_a_trickled_stream_is_read_event_by_event(compact: bool, crlf: bool) -> None:
    """One event a read, as a model's stream comes: each `"usage":null` read is let through
    untouched (no room left after it for another key), and the usage chunk is counted once."""
    stream = _openai_stream(crlf, compact)
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    events = [event + sep for event in stream.split(sep) if event]
    out, usage = _run(events)
    assert out == stream
    assert usage == (5, 3, 2, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20), st.booleans(), st.booleans())
def test_a_usage_chunk_the_client_did_not_ask_for_is_read_not_relayed(
        cuts: list[int], crlf: bool, compact: bool) -> None:
    """The gateway asks an OpenAI provider for a stream's usage (with_stream_usage) to count and
    charge its tokens; a client that did not ask gets the stream it would have got without."""
    stream = _openai_stream(crlf, compact)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    out, usage = _run(pieces, {"stream": True})
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    events = stream.split(sep)
    assert out == sep.join(event for event in events if b'"prompt_tokens"' not in event)
    assert usage == (5, 3, 2, 1)


@pytest.mark.parametrize("events", [
    b'data: {"usage":{}}\n\ndata: [DONE]\n\n',  # the usual one-line event
    b'data: {"usage":{}}\r\n\r\ndata: [DONE]\r\n\r\n',
    b'id: 7\ndata: {"usage":{}}\n\n',
    b'data: {"choices":[],\n\n"usage":{}}\n\n',  # a blank line before the usage line ends the event there
    b'data: {"choices":[],\n"usage":{}}\n\n',
    b'data: {"usage":{}}\n',  # unterminated
])
def test_a_usage_event_ends_at_its_first_blank_line(events: bytes) -> None:
    """Where a hidden usage chunk is cut, when not at once: where the first blank line is."""
    start = events.find(b"data:")
    lf, crlf = events.find(b"\n\n", start), events.find(b"\r\n\r\n", start)
    ends = [end for end in (lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1) if end >= 0]
    assert _event_end(events, start) == min(ends, default=len(events))


@pytest.mark.parametrize("events", [
    b'data: {"choices":[],"usage":{}}\n\ndata: [DONE]\n\n',  # one line, then a blank one: cut at once
    b'id: 7\ndata: {"choices":[],"usage":{}}\n\ndata: [DONE]\n\n',
    b'data: {"choices":[],"usage":{}}\r\n\r\ndata: [DONE]\r\n\r\n',  # the others by _event_end
    b'data: {"choices":[],\n"usage":{}}\n\ndata: [DONE]\n\n',  # JSON spread over two lines
    b'data: {"choices":[],"usage":{}}\nid: 7\n\ndata: [DONE]\n\n',
    b'data: {"choices":[],"usage":{}}\n',  # unterminated
    b'data: {"choices":[],"usage":{}}',
])
def test_a_hidden_usage_event_is_cut_where_its_event_ends(events: bytes) -> None:
    """A hidden usage chunk's event is cut whole, up to the end _event_end gives (found without
    it for the usual one-line event): the output is the same either way."""
    chain = plan("openai", "openai").build(Context({"stream": True}, "m"))
    meter = chain.converters[1]
    start = events.rfind(b"data:", 0, events.find(b'"usage"'))
    end = _event_end(events, start)
    assert meter.feed(events) == events[:start] + events[end:]
    assert meter.usage.reported


def test_a_streamed_request_asks_its_openai_provider_for_usage() -> None:
    assert plan("openai", "openai").translation.asks_stream_usage
    request = with_stream_usage
    asked = request({"model": "m", "stream": True, "stream_options": {"extra": 1}})
    assert asked["stream_options"] == {"extra": 1, "include_usage": True}
    for unchanged in ({"model": "m"}, {"model": "m", "stream": True, "stream_options": {"include_usage": True}}):
        assert request(unchanged) is unchanged


def test_every_single_split_point_gives_the_same_output() -> None:
    expected = _run([STREAM])
    for cut in range(len(STREAM) + 1):
        assert _run([STREAM[:cut], STREAM[cut:]]) == expected, cut


def test_byte_by_byte_gives_the_same_output() -> None:
    assert _run([bytes([b]) for b in STREAM]) == _run([STREAM])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40), st.booleans())
def test_random_splits_give_the_same_output(cuts: list[int], crlf: bool) -> None:
    stream = _openai_stream(crlf)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert _run(pieces) == _run([stream])


class _Tagger:
    """A converter that marks what it passes on and holds back every other piece (so that a
    chain's later converters are sometimes fed nothing)."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.held = b""
        self.fed: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        self.fed.append(data)
        if len(self.fed) % 2:
            self.held += data
            return b""
        out, self.held = self.held + data, b""
        return self.tag + out

    def close(self) -> bytes:
        return self.held


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2, max_value=3), st.lists(st.binary(max_size=5), max_size=12))
def test_a_chains_settled_feed_is_its_feed(size: int, pieces: list[bytes]) -> None:
    """Chain.settled_feed (two converters fused, without the loop) gives what `feed` gives, and
    feeds each converter the same pieces: none is fed nothing. (A chain of one gives its
    converter's own feed, which gives nothing for nothing: the test below.)"""
    general = Chain([_Tagger(b"%d" % i) for i in range(size)])
    settled = Chain([_Tagger(b"%d" % i) for i in range(size)])
    feed = settled.settled_feed()
    assert [feed(p) for p in pieces] == [general.feed(p) for p in pieces]
    assert [c.fed for c in settled.converters] == [c.fed for c in general.converters]
    assert all(fed for c in settled.converters for fed in c.fed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12), st.booleans(), st.booleans())
def test_a_framer_firsts_settled_feed_is_its_feed(cuts: list[int], at_events: bool, crlf: bool) -> None:
    """A chain whose framer comes first settles to SSEFramer.feeding (whole events straight to the
    next converter): it gives what the chain's feed gives, and feeds the next converter the same
    pieces, over reads cut anywhere or between events (`at_events`: the usual reads, whole
    events), empty ones among them."""
    stream = _openai_stream(crlf)
    if at_events:  # each cut moved to the end of the event it falls in
        ends = [end + 4 if crlf else end + 2 for end in _event_ends(stream, b"\r\n\r\n" if crlf else b"\n\n")]
        cuts = [min((end for end in ends if end >= cut), default=len(stream)) for cut in cuts]
    points = sorted(min(cut, len(stream)) for cut in cuts)  # a point twice: an empty read
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    general = Chain([SSEFramer(), _Tagger(b"t")])
    settled = Chain([SSEFramer(), _Tagger(b"t")])
    feed = settled.settled_feed()
    assert [feed(p) for p in pieces] == [general.feed(p) for p in pieces]
    assert settled.converters[1].fed == general.converters[1].fed
    assert settled.close() == general.close()


def _event_ends(stream: bytes, blank: bytes) -> list[int]:
    """Where each event's blank line starts."""
    ends, at = [], stream.find(blank)
    while at >= 0:
        ends.append(at)
        at = stream.find(blank, at + len(blank))
    return ends


@pytest.mark.parametrize(("client", "provider"), [("openai", "openai"), ("openai", "anthropic"),
                                                  ("anthropic", "openai"), ("anthropic", "anthropic")])
def test_a_chains_settled_feed_gives_what_its_feed_gives(client: str, provider: str) -> None:
    """A chain's settled feed (its converter's own, when it has one) gives what the chain's feed
    gives, an empty chunk included."""
    data = STREAM if provider == "openai" else (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":2}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    pieces = [data[:7], b"", data[7:60], b"", data[60:]]
    outputs = []
    for settled in (False, True):
        chain = plan(client, provider).build(Context(ASKS_FOR_USAGE, "m"))
        feed = chain.settled_feed() if settled else chain.feed
        outputs.append([feed(piece) for piece in pieces] + [chain.close()])
    assert outputs[0] == outputs[1] and b"".join(outputs[0])


def test_framer_never_emits_a_partial_event() -> None:
    framer = SSEFramer()
    emitted = b""
    for i in range(0, len(STREAM), 7):
        emitted += framer.feed(STREAM[i : i + 7])
        assert emitted == b"" or emitted.endswith(b"\n\n")
    assert emitted + framer.close() == STREAM


def test_framer_completes_an_unterminated_last_event() -> None:
    framer = SSEFramer()
    assert framer.feed(b"data: 1\n\ndata: 2") == b"data: 1\n\n"
    assert framer.close() == b"data: 2\n\n"


def test_iter_data_joins_multiline_data() -> None:
    assert list(iter_data(b"event: x\ndata: a\ndata: b\n\n: comment\n\ndata:c\r\n\r\n")) == [b"a\nb", b"c"]


def test_one_event_is_bounded_in_framer_and_reader() -> None:
    piece = b"x" * (64 * 1024)
    for reader in (SSEFramer(), SSEDataReader()):
        reader.feed(b"data: ")
        with pytest.raises(EventTooLarge):
            for _ in range(MAX_EVENT // len(piece) + 1):
                assert not reader.feed(piece)


def test_encoded_bodies_hold_only_their_own_size() -> None:
    """A request body is held while its answer streams: a thousand of them (one per open stream)
    must not each keep orjson's 4 KiB working buffer."""
    document = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Tell me a story."}]}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        bodies = [encode(document, "the request") for _ in range(1000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert bodies[0] == orjson.dumps(document)
    assert held < 1000 * 512, f"{held / 1000:.0f} bytes held per body of {len(bodies[0])}"


@pytest.mark.parametrize(("prompt", "cached", "counted"), [(9, 4, 4), (9, 9, 9), (3, 5, 3), (0, 2, 0)])
def test_cached_tokens_count_up_to_the_prompt_tokens(prompt: int, cached: int, counted: int) -> None:
    """Cached tokens are a part of the prompt's: a provider's larger count is cut to the prompt's."""
    usage = Usage()
    usage.add_openai({"prompt_tokens": prompt, "prompt_tokens_details": {"cached_tokens": cached}})
    assert (usage.input, usage.cached) == (prompt, counted)


def _usage_step_by_step(usage: dict) -> tuple[int, int, int, int]:
    """What Usage.add_openai must make of `usage`, each count through _count and each details
    object through _details (the steps its quick reading of the usual values must agree with)."""
    prompt = _count(usage.get("prompt_tokens") or usage.get("input_tokens"))
    output = _count(usage.get("completion_tokens") or usage.get("output_tokens"))
    cached = _count(_details(usage, "prompt_tokens_details", "input_tokens_details").get("cached_tokens"))
    reasoning = _count(_details(usage, "completion_tokens_details", "output_tokens_details").get("reasoning_tokens"))
    return prompt, output, min(cached, prompt), reasoning


_TOKEN_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**54), st.sampled_from([0, 1, 2**53, 2**53 + 1]),
                          st.floats(allow_nan=True), st.sampled_from([2.0, -2.0, 1e308, 0.5]), st.text(max_size=3),
                          st.lists(st.integers(0, 3), max_size=2))
_DETAILS = st.one_of(st.none(), st.integers(0, 3), st.lists(st.integers(0, 3), max_size=1),
                     st.dictionaries(st.sampled_from(["cached_tokens", "reasoning_tokens", "audio_tokens"]),
                                     _TOKEN_VALUES, max_size=3))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompt_tokens", "input_tokens", "completion_tokens", "output_tokens",
                                        "total_tokens"]), _TOKEN_VALUES, max_size=5),
       st.dictionaries(st.sampled_from(["prompt_tokens_details", "input_tokens_details", "completion_tokens_details",
                                        "output_tokens_details"]), _DETAILS, max_size=4))
def test_openai_usage_is_read_as_its_counts_and_details_step_by_step_give_it(counts: dict, details: dict) -> None:
    usage = Usage()
    usage.add_openai({**counts, **details})
    assert usage.reported
    assert (usage.input, usage.output, usage.cached, usage.reasoning) == _usage_step_by_step({**counts, **details})


def _anthropic_usage_step_by_step(before: tuple[int, int, int, int, int], usage: dict) -> tuple[int, ...]:
    """What Usage.add_anthropic must make of `usage` after `before` (input, output, cached,
    cache_write, reasoning), each count through _count (its quick reading of ints must agree)."""
    prompt, output, cached, cache_write, reasoning = before
    fresh = prompt - cached - cache_write if usage.get("input_tokens") is None else _count(usage["input_tokens"])
    if usage.get("cache_read_input_tokens") is not None:
        cached = _count(usage["cache_read_input_tokens"])
    if usage.get("cache_creation_input_tokens") is not None:
        cache_write = _count(usage["cache_creation_input_tokens"])
    if usage.get("output_tokens") is not None:
        output = _count(usage["output_tokens"])
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        reasoning = _count(details["thinking_tokens"])
    return fresh + cached + cache_write, output, cached, cache_write, reasoning


_ANTHROPIC_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
_ANTHROPIC_VALUES = (None, True, False, -1, 0, 7, 2**53, 2**53 + 1, 2.0, -2.0, 0.5, 1e308, float("nan"), "3", [1])


def test_anthropic_usage_is_read_as_its_counts_step_by_step_give_it() -> None:
    """A message_start's usual usage with one count made any of _ANTHROPIC_VALUES, then a
    message_delta's with one count so made, or none (counts it omits keep their value)."""
    usual = {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
    changes = [{key: value} for key in _ANTHROPIC_KEYS for value in _ANTHROPIC_VALUES]
    deltas = [{}, {"output_tokens_details": {"thinking_tokens": 4}}, *changes]
    for start in (usual, {}, *({**usual, **change} for change in changes)):
        for delta in deltas:
            usage = Usage()
            expected = (0, 0, 0, 0, 0)
            for counts in (start, delta):
                usage.add_anthropic(counts)
                expected = _anthropic_usage_step_by_step(expected, counts)
                got = (usage.input, usage.output, usage.cached, usage.cache_write, usage.reasoning)
                assert usage.reported and got == expected, (start, delta)


@pytest.mark.parametrize(("body", "counted"), [
    (b'{"choices":[],"usage":{"prompt_tokens":7}}', 7),  # compact: found without the pattern
    (b'{"choices": [], "usage": {"prompt_tokens": 7}}', 7),  # spaced: by the pattern
    (b'{"choices":[],"usage" :\t{"prompt_tokens":7}}', 7),
    (b'{"choices":[],"usage":null}', 0),
    (b'{"choices":[]}', 0),
    (b'{"usage":{"prompt_tokens":7}', 0),  # not JSON
])
def test_a_buffered_answers_usage_is_read_however_it_is_spaced(body: bytes, counted: int) -> None:
    usage = usage_from_body(body, usage_from_openai)
    assert (usage.input, usage.reported) == (counted, bool(counted))
