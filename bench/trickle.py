"""A trickling OpenAI provider for the streams scenario (bench/streams.py).

    python -m bench.trickle --port 0 [--events 50] [--rate 20]

Every POST .../chat/completions gets an SSE stream of --events events (the last
`data: [DONE]`, the one before it the usage chunk, every other chunk with `"usage":null` as
OpenAI writes them when asked for usage), chunked, at --rate events/s: the way a model generates, and
what nginx cannot do per event; every POST .../messages the same in Anthropic's
format (message_start to message_stop), for converted streams. One timer tick every 1/rate s writes the next
event of every open stream, so that a thousand streams cost one wake-up per
tick, not a thousand timers. Raw asyncio protocols and precomputed chunks keep it
cheap (measured: 20,000 events/s take well under half a core).

GET /_trickle/health answers OK; GET /_trickle/stats answers JSON counters
(events written, streams started and finished) for the bench to read the rate
offered. Prints `listening on 127.0.0.1:<port>` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
LAST_CHUNK = b"0\r\n\r\n"
MAX_HEAD = 64 * 1024


def stream_chunks(events: int) -> list[bytes]:
    """The stream's events as HTTP chunks, as OpenAI writes them when asked for usage (the gateway
    always asks): a role chunk, text deltas, a finish chunk, each with `"usage":null`, then the
    usage chunk (no choices) and [DONE]."""
    base = {"id": "chatcmpl-trickle", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_trickle"}

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                "finish_reason": finish}], "usage": None},
                          separators=(",", ":"))

    usage = json.dumps({**base, "choices": [], "usage": {
        "prompt_tokens": 11, "completion_tokens": events, "total_tokens": 11 + events}},
        separators=(",", ":"))
    datas = [chunk({"role": "assistant", "content": ""})]
    datas += [chunk({"content": f" token{i}"}) for i in range(1, events - 3)]
    datas += [chunk({}, "stop"), usage, "[DONE]"]
    return _chunked(f"data: {data}\n\n" for data in datas[-events:])


def anthropic_chunks(events: int) -> list[bytes]:
    """The stream's events as HTTP chunks, as Anthropic writes them: message_start, a text
    block's start, text deltas, its stop, message_delta, message_stop."""

    def event(data: dict) -> str:
        return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    usage = {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": 1}
    first = [event({"type": "message_start", "message": {
                 "id": "msg_trickle", "type": "message", "role": "assistant", "model": "claude-trickle",
                 "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}),
             event({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})]
    last = [event({"type": "content_block_stop", "index": 0}),
            event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": events}}),
            event({"type": "message_stop"})]
    deltas = [event({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": f" token{i}"}})
              for i in range(1, events - len(first) - len(last) + 1)]
    return _chunked((first + deltas + last)[-events:])


def _chunked(events: Iterable[str]) -> list[bytes]:
    out = []
    for text in events:
        event = text.encode()
        out.append(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    return out


class Streams:
    """The open streams and the counters; `tick` writes one event to each stream."""

    def __init__(self, events: int) -> None:
        self.openai = stream_chunks(events)
        self.anthropic = anthropic_chunks(events)
        self.open: list[Connection] = []
        self.events = 0
        self.started = 0
        self.finished = 0

    def tick(self) -> None:
        current, self.open = self.open, []  # a stream started during the tick waits for the next
        still = []
        for conn in current:
            if conn.transport.is_closing():
                continue
            conn.transport.write(conn.chunks[conn.next])
            self.events += 1
            if conn.next == len(conn.chunks) - 1:
                conn.transport.write(LAST_CHUNK)
                self.finished += 1
                conn.next = -1
                conn.take(b"")  # a request that arrived early (pipelined) starts now
            else:
                conn.next += 1
                still.append(conn)
        self.open = still + self.open

    def stats(self) -> bytes:
        return json.dumps({"events": self.events, "started": self.started,
                           "finished": self.finished, "open": len(self.open)}).encode()


class Connection(asyncio.Protocol):
    """One client connection: reads requests (keep-alive), starts a stream per POST."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.buffer = b""
        self.next = -1  # index of the next chunk to write; -1: no stream open
        self.chunks: list[bytes] = []  # the open stream's
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.take(data)

    def take(self, data: bytes) -> None:
        """Add what arrived; while no stream is open, answer the next complete request."""
        self.buffer += data
        while self.next < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            method, path = head.split(" ", 2)[:2]
            self.answer(method, path)

    def answer(self, method: str, path: str) -> None:
        if method == "POST" and path.endswith(("/chat/completions", "/messages")):
            streams = self.streams
            self.chunks = streams.openai if path.endswith("/chat/completions") else streams.anthropic
            self.transport.write(HEAD)
            self.next = 0
            self.streams.started += 1
            self.streams.open.append(self)
            return
        if path == "/_trickle/stats":
            body = self.streams.stats()
        elif path == "/_trickle/health":
            body = b"OK"
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def serve(port: int, events: int, rate: float) -> None:
    loop = asyncio.get_running_loop()
    streams = Streams(events)
    server = await loop.create_server(lambda: Connection(streams), "127.0.0.1", port, backlog=4096)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    period = 1.0 / rate
    due = loop.time()
    while True:
        due += period
        await asyncio.sleep(max(0.0, due - loop.time()))
        streams.tick()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trickle", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--events", type=int, default=50, help="events per stream, [DONE] included")
    parser.add_argument("--rate", type=float, default=20, help="events per second per stream")
    args = parser.parse_args(argv)
    if args.events < 3:
        parser.error("--events must be at least 3 (role, finish, [DONE])")
    asyncio.run(serve(args.port, args.events, args.rate))


if __name__ == "__main__":
    main()
