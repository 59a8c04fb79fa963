"""One very long upstream SSE event: relayed whole (framing costs linear time), or, past
16 MiB, the stream ends with an error event in the client's format instead of growing."""

from __future__ import annotations

import json

import pytest

from mock_provider import filler_text
from tests.support import Gateway

BIG_KIB = 8200  # one content event of just over 8 MiB, arriving in libcurl's small reads
OVER_KIB = 17 * 1024  # over the 16 MiB bound

# (path, body without model, how the content of a complete answer is read back)
ROUTES = {
    "chat": ("/v1/chat/completions", {"stream": True}),
    "messages": ("/v1/messages", {"stream": True, "max_tokens": 10}),
    "passthrough": ("/proxy/mock/chat/completions", {"stream": True}),
}


def _ask(gateway: Gateway, route: str, kib: int, lead: str = "") -> tuple[int, bytes]:
    path, body = ROUTES[route]
    model = f"gpt-big-{kib}-piece-{kib}{lead}"
    document = {**body, "model": model if route == "passthrough" else f"mock/{model}",
                "messages": [{"role": "user", "content": "hi"}]}
    status, _, answer = gateway.request("POST", path, json.dumps(document).encode())
    return status, answer


def _text(route: str, answer: bytes) -> str:
    """The streamed reply text, from OpenAI chunks or Anthropic text deltas."""
    text = []
    for event in answer.split(b"\n\n"):
        data = next((line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")), None)
        if data is None or data == b"[DONE]":
            continue
        document = json.loads(data)
        if route == "messages":
            if document.get("type") == "content_block_delta":
                text.append(document["delta"]["text"])
        elif document["choices"]:
            text.append(document["choices"][0]["delta"].get("content") or "")
    return "".join(text)


@pytest.mark.parametrize("route", ROUTES)
def test_an_8_mib_event_is_relayed_whole(gateway: Gateway, route: str) -> None:
    status, answer = _ask(gateway, route, BIG_KIB)
    assert status == 200
    assert _text(route, answer) == filler_text(BIG_KIB * 1024)


@pytest.mark.parametrize("route", ROUTES)
def test_an_event_over_the_bound_ends_the_stream_with_an_error_event(gateway: Gateway, route: str) -> None:
    status, answer = _ask(gateway, route, OVER_KIB)
    assert status == 200
    assert len(answer) < 1 << 20, "the oversized event must not be relayed"
    last = answer.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    if route == "messages":
        assert last.startswith(b"event: error\ndata: ")
        error = json.loads(last.split(b"data: ", 1)[1])
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        error = json.loads(last.removeprefix(b"data: "))
        assert error["error"]["type"] == "api_error"
    assert "larger than 16 MiB" in json.dumps(error)
    before = answer.rstrip(b"\n").rsplit(b"\n\n", 1)[0]
    assert _text(route, before) == ""  # the events before it (the reply's start) are whole


@pytest.mark.parametrize("route", ROUTES)
def test_an_event_over_the_bound_after_the_reply_began_ends_it_with_an_error_event(
    gateway: Gateway, route: str
) -> None:
    """Once a stream's first bytes are out, its chunks take the straight path from libcurl's
    write callback (upstream/attempt.py `_steady`): an event too large still ends it cleanly."""
    status, answer = _ask(gateway, route, OVER_KIB, "-leadbytes")
    assert status == 200
    assert len(answer) < 1 << 20, "the oversized event must not be relayed"
    last = answer.rstrip(b"\n").rsplit(b"\n\n", 1)
    assert b"larger than 16 MiB" in last[-1]
    assert _text(route, last[0]) == filler_text(2)  # the reply's first characters went out
