"""Throughput of the chat stream converters: upstream SSE events per second, per chain.

    python -m bench.converters            (or: python bench/converters.py)
    python -m bench.converters --seconds 3 --deltas 2000

Each row runs the chain the gateway builds for a (client, provider) pair over one
realistic upstream stream (a text answer, then two tool calls with their arguments
in small fragments, then the usage), fed one upstream event per call as a
provider's network reads deliver them, and once in 4 KiB reads. Pure CPU, one core,
no network; numbers depend on the machine and say how far the converters are from
being the bottleneck of a streamed answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", " Ça", " ☃")
ARGUMENTS = ('{"city": "Paris", "unit": "celsius", "days": 7}', '{"timezone": "Europe/Oslo"}')


def _anthropic_stream(deltas: int) -> list[bytes]:
    """One Anthropic event per element, as Anthropic sends them."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {
            "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 1200, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0,
                      "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)]}} for i in range(deltas)),
        {"type": "content_block_stop", "index": 0},
    ]
    for n, (tool_id, arguments) in enumerate(zip(("toolu_A", "toolu_B"), ARGUMENTS, strict=True), start=1):
        events.append({"type": "content_block_start", "index": n,
                       "content_block": {"type": "tool_use", "id": tool_id, "name": "lookup", "input": {}}})
        events += [{"type": "content_block_delta", "index": n,
                    "delta": {"type": "input_json_delta", "partial_json": arguments[i : i + 5]}}
                   for i in range(0, len(arguments), 5)]
        events.append({"type": "content_block_stop", "index": n})
    events += [{"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": deltas + 40}},
               {"type": "message_stop"}]
    return [f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events]


def _openai_stream(deltas: int) -> list[bytes]:
    """One OpenAI chunk per element, as OpenAI sends them (with stream_options.include_usage)."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        choices = [] if delta is None else [choice]
        return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                "model": "gpt-bench", "system_fingerprint": "fp_bench", "choices": choices, "usage": usage}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": WORDS[i % len(WORDS)]}) for i in range(deltas)]
    for n, arguments in enumerate(ARGUMENTS):
        chunks.append(chunk({"tool_calls": [{"index": n, "id": f"call_{n}", "type": "function",
                                             "function": {"name": "lookup", "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": n, "function": {"arguments": arguments[i : i + 5]}}]})
                   for i in range(0, len(arguments), 5)]
    chunks.append(chunk({}, "tool_calls"))
    chunks.append(chunk(None, usage={"prompt_tokens": 2000, "completion_tokens": deltas + 40,
                                     "total_tokens": 2040 + deltas,
                                     "prompt_tokens_details": {"cached_tokens": 800},
                                     "completion_tokens_details": {"reasoning_tokens": 0}}))
    return [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def _reads(events: list[bytes], size: int) -> list[bytes]:
    """The stream cut into fixed-size reads, ignoring event boundaries."""
    data = b"".join(events)
    return [data[i : i + size] for i in range(0, len(data), size)]


def _measure(build: Callable[[], Any], pieces: list[bytes], seconds: float) -> tuple[float, int]:
    """(seconds per stream, output bytes): whole streams through fresh chains for `seconds`.

    The fastest run counts: slower ones measure the neighbours on a shared machine.
    """
    best, out_size, runs = float("inf"), 0, 0
    deadline = time.perf_counter() + seconds
    while runs < 3 or time.perf_counter() < deadline:
        started = time.perf_counter()
        chain = build()
        out_size = sum(len(chain.feed(piece)) for piece in pieces) + len(chain.close())
        best = min(best, time.perf_counter() - started)
        runs += 1
    return best, out_size


def main() -> None:
    if not __package__:  # run as a script: bench/ comes first on sys.path and shadows the converters package
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from converters.base import Context
    from converters.registry import BUILT_IN

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per row (default 1)")
    parser.add_argument("--deltas", type=int, default=1000, help="text deltas in the stream (default 1000)")
    args = parser.parse_args()

    streams = {"anthropic": _anthropic_stream(args.deltas), "openai": _openai_stream(args.deltas)}
    request = {"model": "bench", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    rows = []
    for client, provider in BUILT_IN.translations:
        chain_plan = BUILT_IN.plan(client, provider)
        events = streams[provider]
        for feeding, pieces in (("per event", events), ("4 KiB reads", _reads(events, 4096))):
            per_stream, out_size = _measure(lambda p=chain_plan: p.build(Context(request, "bench")), pieces,
                                            args.seconds)
            rows.append((f"{provider} -> {client}", " + ".join(chain_plan.names), feeding, len(events),
                         len(events) / per_stream, sum(map(len, events)) / per_stream / 1e6, out_size))

    header = ("provider -> client", "chain", "feeding", "events", "events/s", "MB/s in", "bytes out")
    table = [header, *((a, b, c, str(d), f"{e:,.0f}", f"{f:.1f}", str(g)) for a, b, c, d, e, f, g in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"python {sys.version.split()[0]}, {args.deltas} text deltas + 2 tool calls per stream")
    for i, row in enumerate(table):
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.rjust(w) if j >= 3 else cell.ljust(w) for j, (cell, w) in enumerate(cells)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
