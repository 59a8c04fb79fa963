"""A trickling OpenAI provider for the streams scenario (bench/streams.py).

    python -m bench.trickle --port 0 [--events 50] [--rate 20]

Every POST .../chat/completions gets an SSE stream of --events events (the last
`data: [DONE]`), chunked, at --rate events/s: the way a model generates, and
what nginx cannot do per event. One timer tick every 1/rate s writes the next
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

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
LAST_CHUNK = b"0\r\n\r\n"
MAX_HEAD = 64 * 1024


def stream_chunks(events: int) -> list[bytes]:
    """The stream's events as HTTP chunks: a role chunk, text deltas, a finish chunk, [DONE]."""
    base = {"id": "chatcmpl-trickle", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_trickle"}

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                "finish_reason": finish}]},
                          separators=(",", ":"))

    datas = [chunk({"role": "assistant", "content": ""})]
    datas += [chunk({"content": f" token{i}"}) for i in range(1, events - 2)]
    datas += [chunk({}, "stop"), "[DONE]"]
    out = []
    for data in datas[-events:]:
        event = f"data: {data}\n\n".encode()
        out.append(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    return out


class Streams:
    """The open streams and the counters; `tick` writes one event to each stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.open: list[Connection] = []
        self.events = 0
        self.started = 0
        self.finished = 0

    def tick(self) -> None:
        current, self.open = self.open, []  # a stream started during the tick waits for the next
        still = []
        last = len(self.chunks) - 1
        for conn in current:
            if conn.transport.is_closing():
                continue
            conn.transport.write(self.chunks[conn.next])
            self.events += 1
            if conn.next == last:
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
        if method == "POST" and path.endswith("/chat/completions"):
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
    streams = Streams(stream_chunks(events))
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
