"""Redaction in process: each preset on its own, the checks that keep look-alikes, the DSL's
refusals, and the property that matters: a streamed answer, however its secret is split
across SSE events and TCP chunks, leaks no piece of it and equals the buffered answer."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from handlers.registry import HANDLERS
from redaction.answers import AnswerRedactor
from redaction.final_reads import final_texts
from redaction.patterns import measure
from redaction.patterns import pattern as pattern_of
from redaction.policy import Policy
from redaction.presets import PII, SECRETS, entropy_pattern
from redaction.scanner import Scanner

SCANNER = Scanner(SECRETS + PII + (entropy_pattern(24, 4.0, 3),), b"k" * 32)
POLICY = Policy("test", SCANNER)

# (kind, the text planted, the part of it that is the secret)
PLANTED = [
    ("openai_key", k := "sk-proj-Ab3dEfGh1jKlMn0pQrStUvWxYz12345678AbCdEfGhIjKlMnOp", k),
    ("openai_key", k := "sk-" + "aB3" * 16, k),
    ("anthropic_key", k := "sk-ant-api03-" + "Zx9_" * 24 + "AA", k),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github_token", k := "ghp_" + "a1B2c3D4e5" * 4, k),
    ("github_token", k := "github_pat_11ABCDEFG0" + "x1Y2z3" * 10, k),
    ("gitlab_token", k := "glpat-" + "Xy12" * 5, k),
    ("slack_token", k := "xoxb-123456789012-123456789012-" + "abcDEF123456" * 2, k),
    ("google_api_key", k := "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", k),
    ("jwt", k := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", k),
    ("private_key", k := "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n"
     "Z1BjP5CE8Wl7Ek5L0Txb=\n-----END RSA PRIVATE KEY-----", k),
    ("bearer_token", "Authorization: Bearer abcDEF123456ghiJKL789", "abcDEF123456ghiJKL789"),
    ("url_credentials", "postgres://admin:hunter2pass@db.example.com/x", "admin:hunter2pass"),
    ("password", "password=Hunter22!x", "Hunter22!x"),
    ("password", '"secret": "s3cr3t-value-9"', "s3cr3t-value-9"),
    ("email", k := "jane.doe+x@mail.example.co.uk", k),
    ("card_number", k := "4111 1111 1111 1111", k),
    ("card_number", k := "5500005555555559", k),
    ("phone", k := "+1 415-555-2671", k),
    ("phone", k := "(415) 555-2671", k),
    ("iban", k := "DE89 3704 0044 0532 0130 00", k),
    ("iban", k := "GB82WEST12345698765432", k),
    ("us_ssn", k := "123-45-6789", k),
    ("high_entropy", k := "Zq8mK2pX9vR4tL7wN3bY6cF1hJ5gD0sA", k),
]


@pytest.mark.parametrize(("kind", "planted", "secret"), PLANTED, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTED)])
def test_each_preset_replaces_its_kind_with_a_stable_label(kind: str, planted: str, secret: str) -> None:
    found: list[str] = []
    out = SCANNER.redact(f"before {planted} after.", found)
    assert secret not in out and found == [kind]
    label = SCANNER.label(kind, secret)
    assert out == f"before {planted.replace(secret, label)} after."
    assert SCANNER.redact(f"again: {planted}", []).endswith(planted.replace(secret, label))


@pytest.mark.parametrize("text", [
    "550e8400-e29b-41d4-a716-446655440000",  # a UUID
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # a sha256 digest
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a sha1 digest
    "4111 1111 1111 1112",  # fails the Luhn check
    "GB82WEST12345698765433",  # fails the IBAN checksum
    "000-12-3456",  # never issued
    "The quick brown fox jumps over the lazy dog, twice: 2 times in 2026.",
    "sk-learn-compatible-estimators-are-fine",  # words, not a key
    "password=self.password, secret=${SECRET}, Bearer $TOKEN",  # code and placeholders
    "tests/unit/test_redaction_streams_equal_buffered.py",
    "converters.chat_streams.AnthropicToOpenAIStream",
])
def test_lookalikes_are_left_alone(text: str) -> None:
    found: list[str] = []
    assert SCANNER.redact(text, found) == text and found == []


@pytest.mark.parametrize(("regex", "problem"), [
    ("sk-[a-z]+", "unboundedly"), ("a*", "unboundedly"), ("x{3,}", "unboundedly"), ("(?=.*a)b", "lookaround"),
    ("a?", "empty"), ("[a-z]{1,9000}", "at most"),
])
def test_unbounded_patterns_are_refused(regex: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        measure(regex)


def test_bounded_pattern_has_its_width_and_lookarounds() -> None:
    bounds = measure(r"(?<![a-z])TCK-\d{6}(?!\d)")
    assert (bounds.width, bounds.ahead, bounds.behind) == (10, 1, 1)


ROUTES = """\
version: 1
providers:
  mock: {url: "http://127.0.0.1:1/v1", api_key: x}
redaction:
  policies:
    p:
      presets: [secrets]
      patterns:
        - {name: ticket, regex: 'TCK-[0-9]{6}'}
        - {name: loose, regex: 'sk-[a-z]+'}
agents:
  a: {models: [mock/m], redaction: nope}
routes:
  - {match: POST /v1/chat/completions, handler: chat, redaction: p}
  - {match: "ANY /proxy/{provider}/{path*}", handler: passthrough, redaction: p}
"""


def test_dsl_names_file_line_and_key_of_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    with pytest.raises(ConfigError) as caught:
        compile_file(str(path), {}, handlers=HANDLERS.rules)
    found = sorted(str(p) for p in caught.value.problems)
    assert any(":10:" in p and "redaction.policies.p.patterns[1].regex: can match unboundedly" in p for p in found)
    assert any("agents.a.redaction: unknown redaction policy 'nope'" in p for p in found)
    assert any("routes[1].redaction: the passthrough handler does not redact" in p for p in found)
    assert len(found) == 3, found


def test_routes_without_redaction_get_no_stage(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.replace("        - {name: loose, regex: 'sk-[a-z]+'}\n", "")
                    .replace(", redaction: nope", "").replace(", redaction: p}\n", "}\n", 2)
                    .replace("  - {match: POST /v1/chat/completions, handler: chat}",
                             "  - {match: POST /v1/chat/completions, handler: chat, redaction: p}\n"
                             "  - {match: POST /v2/chat/completions, handler: chat}"))
    table = compile_file(str(path), {}, handlers=HANDLERS.rules)
    names = {route.match: [type(s).__name__ for s in route.stages] for route in table.routes}
    assert "Redaction" in names["POST /v1/chat/completions"]
    assert "Redaction" not in names["POST /v2/chat/completions"]


# -- streams ---------------------------------------------------------------------------

def _openai_stream(pieces: list[str], field: str) -> bytes:
    events = []
    for piece in pieces:
        delta: dict = ({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} if field == "arguments"
                       else {field: piece})
        events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


_ANTHROPIC_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


def _anthropic_stream(pieces: list[str], delta_type: str) -> bytes:
    events = [{"type": "message_start", "message": {"id": "m", "content": []}},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    name = _ANTHROPIC_FIELDS[delta_type]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": delta_type, name: p}} for p in pieces]
    events += [{"type": "content_block_stop", "index": 0}, {"type": "message_stop"}]
    return b"".join(f"event: {e['type']}\ndata: ".encode() + orjson.dumps(e) + b"\n\n" for e in events)


def _streamed_text(out: bytes, client_format: str) -> str:
    """The text the client reassembles; every event must be whole, well-formed JSON."""
    text = ""
    assert out.endswith(b"\n\n")
    for event in out.split(b"\n\n")[:-1]:
        data = [line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")]
        assert len(data) == 1, event
        if data[0] == b"[DONE]":
            continue
        parsed = json.loads(data[0])
        if client_format == "anthropic":
            delta = parsed.get("delta", {})
            text += delta.get(_ANTHROPIC_FIELDS.get(delta.get("type"), ""), "")
        else:
            for choice in parsed["choices"]:
                delta = choice["delta"]
                text += delta.get("content", "") + delta.get("reasoning_content", "")
                text += "".join(c["function"]["arguments"] for c in delta.get("tool_calls", ()))
    return text


def _run(stream: bytes, cuts: list[int], client_format: str) -> bytes:
    converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
    out, last = [], 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        out.append(converter.feed(stream[last:cut]))
        last = cut
    return b"".join(out) + converter.close()


def _no_piece_of(secret: str, text: str) -> None:
    for i in range(len(secret) - 7):
        assert secret[i:i + 8] not in text, (secret[i:i + 8], text)


FIELDS = [("openai", "content"), ("openai", "reasoning_content"), ("openai", "arguments"),
          ("anthropic", "text_delta"), ("anthropic", "thinking_delta"), ("anthropic", "input_json_delta")]


def _stream(client_format: str, field: str, pieces: list[str]) -> bytes:
    return _openai_stream(pieces, field) if client_format == "openai" else _anthropic_stream(pieces, field)


@pytest.mark.parametrize(("kind", "planted", "secret"), PLANTED, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTED)])
def test_a_secret_split_at_every_boundary_never_leaks(kind: str, planted: str, secret: str) -> None:
    text = f"Here it is: {planted} — keep it safe."
    whole = SCANNER.redact(text, [])
    for client_format, field in (FIELDS[0], FIELDS[3]):
        for at in range(1, len(text)):  # the text split into two events at every character...
            stream = _stream(client_format, field, [text[:at], text[at:]])
            out = _run(stream, [], client_format)
            assert _streamed_text(out, client_format) == whole
            _no_piece_of(secret, out.decode())
        stream = _stream(client_format, field, [text])
        for at in range(1, len(stream)):  # ...and one event's bytes cut at every byte
            out = _run(stream, [at], client_format)
            assert _streamed_text(out, client_format) == whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    planted=st.sampled_from(PLANTED),
    field=st.sampled_from(FIELDS),
    prose=st.lists(st.sampled_from(["the ", "key ", "is ", "4 ", "x@", "sk", "-", "AKIA", "\n", "é ", "🙂 "]),
                   max_size=12),
    splits=st.lists(st.integers(min_value=1, max_value=400), max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=12),
)
def test_streams_equal_buffered_answers_however_split(
    planted: tuple[str, str, str], field: tuple[str, str], prose: list[str], splits: list[int], cuts: list[int]
) -> None:
    _, text, secret = planted
    text = "".join(prose) + " " + text + " " + "".join(reversed(prose))
    client_format, name = field
    bounds = sorted({s % len(text) for s in splits} - {0})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    stream = _stream(client_format, name, pieces)
    out = _run(stream, [c % len(stream) for c in cuts], client_format)
    streamed = _streamed_text(out, client_format)
    assert streamed == SCANNER.redact(text, [])
    _no_piece_of(secret, out.decode())


def test_buffered_answers_are_redacted_in_both_formats() -> None:
    secret = PLANTED[0][2]
    openai_answer = {"choices": [{"index": 0, "message": {
        "content": f"a {secret}", "reasoning_content": f"r {secret}",
        "tool_calls": [{"function": {"arguments": json.dumps({"k": secret})}}]}}]}
    anthropic_answer = {"content": [{"type": "text", "text": secret}, {"type": "thinking", "thinking": secret},
                                    {"type": "tool_use", "input": {"nested": [secret]}}]}
    for client_format, answer in (("openai", openai_answer), ("anthropic", anthropic_answer)):
        counted: list[str] = []
        converter = AnswerRedactor(POLICY, client_format, counted.append)
        out = converter.feed(orjson.dumps(answer)) + converter.close()
        assert secret[:8] not in out.decode() and counted == ["openai_key"] * 3
        json.loads(out)


def test_a_stream_holds_back_a_word_not_the_whole_answer() -> None:
    redacting = SCANNER.stream([])
    out = redacting.feed("Hello there, this is an ordinary sentence with nothing hidden in it. And")
    assert out.startswith("Hello there, this is an ordinary sentence") and redacting.held <= len(" And")


def test_custom_patterns_and_empty_policies_stream_too() -> None:
    custom = Scanner((pattern_of("ticket", r"TCK-[0-9]{6}"),), b"k" * 32)
    text = "see TCK-123456 and TCK-654321, not TCK-12"
    for scanner in (custom, Scanner((), b"k" * 32)):
        whole = scanner.redact(text, [])
        for at in range(1, len(text)):
            redacting = scanner.stream([])
            assert redacting.feed(text[:at]) + redacting.feed(text[at:]) + redacting.close() == whole
    assert "TCK-123456" not in custom.redact(text, []) and "TCK-12" in custom.redact(text, [])


def _events_of(out: bytes) -> list[dict]:
    """Every event of a converter's output, each whole JSON (the data line of each)."""
    assert not out or out.endswith(b"\n\n"), out
    events = []
    for event in out.split(b"\n\n")[:-1]:
        data = [line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")]
        assert len(data) == 1, event
        events.append(json.loads(data[0]))
    return events


def test_events_whose_text_is_settled_pass_untouched_and_a_secret_begun_in_one_is_caught() -> None:
    secret = PLANTED[0][2]
    pieces = ["Hello there ", "my friend, ", f"the key: {secret[:6]}", secret[6:], " and more ", "words."]
    for client_format, field in (FIELDS[0], FIELDS[3]):
        stream = _stream(client_format, field, pieces)
        raws = [event + b"\n\n" for event in stream.split(b"\n\n")[:-1]]
        converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
        outs = [converter.feed(raw) for raw in raws]
        out = b"".join(outs) + converter.close()
        # "my friend, " settles all of itself and "there " held before it: it goes out as it came
        second = next(i for i, raw in enumerate(raws) if b"my friend" in raw)
        assert outs[second] == raws[second]
        # the key's first characters came in an event of prose: held back, then replaced whole
        text = _streamed_text(out, client_format)
        assert text == SCANNER.redact("".join(pieces), []) and secret[:6] not in out.decode()
        assert text.startswith("Hello there my friend, the key: [REDACTED:openai_key:")


def test_events_the_fast_path_cannot_be_sure_of_are_parsed() -> None:
    secret = PLANTED[0][2]
    head = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":['
    shapes = [  # two choices; an escaped quote before the text; a text ending the choice; spaced JSON
        head + b'{"index":0,"delta":{"content":"' + secret.encode() + b' "},"finish_reason":null},'
        b'{"index":1,"delta":{"content":"' + secret.encode() + b' "},"finish_reason":null}]}\n\n',
        head + b'{"index":0,"delta":{"content":"' + secret.encode() + b'"},"finish_reason":"stop"}],'
        b'"note":"\\"delta\\":{\\"content\\":\\"x\\"}"}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "' + secret.encode() + b' "}}]}\n\n',
    ]
    for shape in shapes:
        converter = AnswerRedactor(POLICY, "openai", lambda kind: None)
        out = converter.feed(shape) + converter.feed(b"data: [DONE]\n\n") + converter.close()
        assert secret[:8] not in out.decode() and b"[REDACTED:openai_key:" in out, out
        _events_of(out[: out.rindex(b"data: [DONE]")])


def _cut_before_the_end(stream: bytes, client_format: str) -> bytes:
    """The stream as an upstream cut sends it: every text event, none of those that end it."""
    end = stream.index(b'"finish_reason":"stop"') if client_format == "openai" else stream.index(
        b"event: content_block_stop")
    return stream[: stream.rfind(b"\n\n", 0, end) + 2]


@pytest.mark.parametrize(("kind", "planted", "secret"), PLANTED, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTED)])
def test_a_stream_cut_at_any_point_leaks_no_piece_of_a_secret(kind: str, planted: str, secret: str) -> None:
    text = f"Here it is: {planted} — keep it safe."
    for client_format, field in (FIELDS[0], FIELDS[3]):
        for at in range(1, len(text) + 1):
            pieces = [text[: at // 2], text[at // 2 : at]] if at > 1 else [text[:at]]
            stream = _cut_before_the_end(_stream(client_format, field, pieces), client_format)
            converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
            out = converter.feed(stream) + converter.cut()
            _events_of(out)
            _no_piece_of(secret, out.decode())
            if at == len(text):  # cut after the whole text: nothing held back is lost
                assert _streamed_text(out, client_format) == SCANNER.redact(text, [])


def test_a_cut_lets_the_last_word_of_prose_through() -> None:
    # What could begin a secret and is 8 characters or more, not all letters, is masked: the
    # start of a key or a number, and (the price of not knowing) of an address or a path.
    for ending, expected in (("and goodbye", "and goodbye"), ("Python 3.11", "Python 3.11"),
                             ("the key is sk-proj-Ab3dEf", "the key is [REDACTED:openai_key:partial]"),
                             ("call 4111 1111 11", "call [REDACTED:card_number:partial]"),
                             ("see https://example", "see https:[REDACTED:high_entropy:partial]")):
        redacting = SCANNER.stream([])
        assert redacting.feed(ending) + redacting.cut() == expected


def test_a_chunks_redactions_are_counted_when_the_next_comes_or_at_the_end() -> None:
    # A hedged try that loses the client with a chunk is not called again: what that chunk
    # replaced must not be counted for the answer the client got from another try.
    secret = PLANTED[0][2]
    stream = _openai_stream([f"key {secret} ", "and more ", "words"], "content")
    events = [event + b"\n\n" for event in stream.split(b"\n\n")[:-1]]
    counted: list[str] = []
    converter = AnswerRedactor(POLICY, "openai", counted.append)
    outs = []
    for event in events:
        outs.append(converter.feed(event))
        if b"[REDACTED:openai_key:" in outs[-1]:
            break
    assert counted == []
    converter.feed(events[len(outs)])
    assert counted == ["openai_key"]
    cut = AnswerRedactor(POLICY, "openai", counted.append)
    cut.feed(_cut_before_the_end(_openai_stream([f"key {secret}"], "content"), "openai"))
    cut.cut()
    assert counted == ["openai_key"] * 2


@pytest.mark.parametrize(("client_format", "field"), [FIELDS[0], FIELDS[3]])
def test_a_read_of_many_events_like_the_last_passes_whole_but_for_its_ends(client_format: str, field: str) -> None:
    words = ["Hello", " there", " my", " good", " friend", " how", " are", " you", " today"]
    secret = PLANTED[0][2]
    for pieces in (words, [*words[:4], f" key {secret[:9]}", secret[9:], " done"]):
        stream = _stream(client_format, field, pieces)
        events = [event + b"\n\n" for event in stream.split(b"\n\n")[:-1]]
        at = next(i for i, event in enumerate(events) if b"Hello" in event)
        # the event before the run, read alone, shows the gateway the events' shape
        converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
        head = b"".join(converter.feed(event) for event in events[: at + 1])
        run_end = at + len(pieces)
        middle = converter.feed(b"".join(events[at + 1 : run_end]))
        out = head + middle + b"".join(converter.feed(event) for event in events[run_end:]) + converter.close()
        assert _streamed_text(out, client_format) == SCANNER.redact("".join(pieces), [])
        if pieces is words:  # " my" .. " you" went out as they came, "there"'s event with "Hello" held before it
            assert b"".join(events[at + 2 : run_end - 1]) in middle
        else:
            assert secret[:8] not in out.decode()


def test_logprobs_are_dropped_since_their_tokens_spell_the_text() -> None:
    secret = PLANTED[0][2]
    tokens = {"content": [{"token": secret[i:i + 4], "logprob": -0.1, "bytes": None, "top_logprobs": []}
                          for i in range(0, len(secret), 4)]}
    answer = {"choices": [{"index": 0, "message": {"content": "fine"}, "logprobs": tokens}]}
    converter = AnswerRedactor(POLICY, "openai", lambda kind: None)
    out = json.loads(converter.feed(orjson.dumps(answer)) + converter.close())
    assert out["choices"][0]["logprobs"] is None and out["choices"][0]["message"]["content"] == "fine"
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": secret[:4]}, "logprobs": tokens, "finish_reason": None}]}
    converter = AnswerRedactor(POLICY, "openai", lambda kind: None)
    out = converter.feed(b"data: " + orjson.dumps(chunk) + b"\n\n") + converter.feed(b"data: [DONE]\n\n")
    out += converter.close()
    assert all(event["choices"][0].get("logprobs") is None for event in _events_of(out[: out.rindex(b"data: [DONE]")]))
    assert secret[4:12] not in out.decode()


@pytest.mark.parametrize(("client_format", "field"), [FIELDS[0], FIELDS[3]])
def test_a_stream_read_whole_goes_out_as_it_came_and_its_end_is_redacted_in_place(
        client_format: str, field: str) -> None:
    words = ["Hello", " there", " my", " good", " friend"]
    stream = _stream(client_format, field, words)
    converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
    assert converter.feed(stream) + converter.close() == stream  # nothing held back: the text ends in this read
    secret = PLANTED[0][2]
    pieces = [*words, f" key {secret[:9]}", secret[9:]]
    stream = _stream(client_format, field, pieces)
    converter = AnswerRedactor(POLICY, client_format, lambda kind: None)
    out = converter.feed(stream) + converter.close()
    assert _streamed_text(out, client_format) == SCANNER.redact("".join(pieces), [])
    assert secret[:8] not in out.decode()
    # what was held went out in an event shaped as the last text event, before the field's end
    texts = [event for event in out.split(b"\n\n") if b"[REDACTED:" in event]
    assert len(texts) == 1 and texts[0].startswith(stream.split(b"\n\n")[len(pieces) - 1][:40])


def test_textless_events_with_more_than_scalars_are_parsed() -> None:
    secret = PLANTED[0][2]
    tokens = {"content": [{"token": secret[:8], "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": tokens,
                                       "finish_reason": None}]},
              {"id": "c", "choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": None}]},
              {"id": "c", "choices": [{"index": 0, "delta": {"refusal": None}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1}}]
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    for cuts in ([], list(range(1, len(stream)))):
        out = _run(stream, cuts, "openai")
        events = _events_of(out[: out.rindex(b"data: [DONE]")])
        assert secret[:8] not in out.decode() and events[0]["choices"][0]["logprobs"] is None
        assert _streamed_text(out, "openai") == "fine" and events[-1]["usage"] == {"prompt_tokens": 1}


def test_a_final_read_is_checked_whole_only_when_it_holds_plain_text_pieces() -> None:
    plain = _openai_stream(["Hello", " there"], "content")
    assert final_texts(plain, False) == ["Hello there"]
    assert final_texts(_openai_stream(["{\"a\":", "1}"], "arguments"), False) == ['{"a":1}']
    assert final_texts(_anthropic_stream(["Hi", " you"], "text_delta"), True) == ["Hi you"]
    assert final_texts(plain[: plain.rindex(b"data: [DONE]")], False) is None  # the stream goes on
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
    for changed in ({"logprobs": {"content": []}}, {"delta": {"thinking_blocks": [{"thinking": "t"}]}},
                    {"delta": {"content": 5}}):
        odd = {"choices": [{**chunk["choices"][0], **changed}]}
        stream = b"data: " + orjson.dumps(odd) + b"\n\n" + plain
        assert final_texts(stream, False) is None, changed
    for odd_event in (b"data: {\"choices\":[\n\n", b"id: 7\ndata: {}\n\n", b"data: [1, 2]\n\n"):
        assert final_texts(odd_event + plain, False) is None, odd_event
    started = _anthropic_stream(["Hi"], "text_delta").replace(b'"text":""', b'"text":"sk-"')
    assert final_texts(started, True) is None  # text in a block's start: the event-by-event path's


@pytest.mark.parametrize("field", ["reasoning", "refusal"])
def test_reasoning_and_refusals_of_openai_compatible_servers_are_redacted(field: str) -> None:
    secret = PLANTED[0][2]
    text = f"the key is {secret} as quoted"
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, field: text}}]}
    converter = AnswerRedactor(POLICY, "openai", lambda kind: None)
    out = json.loads(converter.feed(orjson.dumps(answer)) + converter.close())
    assert out["choices"][0]["message"][field] == SCANNER.redact(text, [])
    role = {"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", field: ""}, "finish_reason": None}]}
    chunks = [role] + [{"id": "c", "choices": [{"index": 0, "delta": {field: text[i:i + 5]}, "finish_reason": None}]}
                       for i in range(0, len(text), 5)]
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    for cuts in ([], list(range(1, len(stream), 7))):  # whole (the final-read check), and in pieces
        out = _run(stream, cuts, "openai")
        events = _events_of(out[: out.rindex(b"data: [DONE]")])
        streamed = "".join(e["choices"][0]["delta"].get(field) or "" for e in events)
        assert streamed == SCANNER.redact(text, []) and secret[:8] not in out.decode()
