"""The canned provider's answers (bench/fixtures/) are what the bench's checks expect: valid
JSON and SSE in each format, the same text in all four, so that converted answers compare."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "bench" / "fixtures"


def _events(name: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; every event ends with a blank line."""
    text = (FIXTURES / name).read_text()
    assert text.endswith("\n\n")
    events = []
    for block in text[:-2].split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) <= {"event", "data"} and "data" in fields, block
        events.append((fields.get("event"), fields["data"]))
    return events


def test_the_four_answers_carry_the_same_text() -> None:
    chat = json.loads((FIXTURES / "openai-chat.json").read_text())
    text = chat["choices"][0]["message"]["content"]
    message = json.loads((FIXTURES / "anthropic-message.json").read_text())
    assert [block["text"] for block in message["content"]] == [text]

    openai = _events("openai-stream.sse")
    assert openai[-1] == (None, "[DONE]")
    *chunks, usage = [json.loads(data) for _, data in openai[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # as OpenAI streams when asked for usage (the gateway always asks): a null on every chunk,
    # then a chunk of usage alone
    assert all("usage" in c and c["usage"] is None for c in chunks)
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0

    anthropic = _events("anthropic-stream.sse")
    datas = [json.loads(data) for _, data in anthropic]
    assert all(name == data["type"] for (name, _), data in zip(anthropic, datas, strict=True))
    assert [d["type"] for d in datas[:2]] == ["message_start", "content_block_start"]
    assert datas[-1]["type"] == "message_stop"
    assert "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta") == text
    assert 11 <= len(openai) <= 14 and 11 <= len(anthropic) <= 15
