"""CPU per relayed event of the write to the client: Tornado's write + flush against
handlers/chunk_write.py, on one keep-alive connection over loopback.

    python -m bench.relay_write [--events 20000] [--rounds 3]

A Tornado server answers GET /tornado and GET /lean with a chunked stream of `--events`
SSE events (an OpenAI chunk each), one write per loop turn as a relayed stream does; a
client thread reads them. The server thread's CPU (time.thread_time, the client's is its
own) over the events, per event, is printed for each path and round, interleaved, and
their ratio: only the write path differs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time

from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from handlers.chunk_write import chunked_connection, write_chunk

EVENT = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
         b'"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n')


class Stream(RequestHandler):
    """The events, through Tornado or written as chunks by chunk_write; CPU noted on the app."""

    async def get(self, path: str) -> None:
        events: int = self.application.settings["events"]
        self.set_header("Content-Type", "text/event-stream")
        self.write(EVENT)
        await self.flush()
        connection = chunked_connection(self) if path == "lean" else None
        started = time.thread_time()
        for _ in range(events):
            await asyncio.sleep(0)  # each event in a loop turn of its own, as upstream reads arrive
            if connection is None or not write_chunk(self, connection, EVENT):
                self.write(EVENT)
                self.flush()
        self.application.settings["cpu"].append(time.thread_time() - started)
        self.finish()


def read_stream(port: int, path: str) -> int:
    """GET the stream; its body's length (reads until the last chunk)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = bytearray()
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(1 << 20)
            if not data:
                break
            received += data
    return len(received)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cpu: list[float] = []
    app = Application([(r"/(tornado|lean)", Stream)], events=args.events, cpu=cpu)
    ready = threading.Event()
    ports: list[int] = []

    def serve() -> None:
        async def run() -> None:
            server = HTTPServer(app)
            sockets = [socket.create_server(("127.0.0.1", 0))]
            sockets[0].setblocking(False)
            server.add_sockets(sockets)
            ports.append(sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Event().wait()
        asyncio.run(run())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait()
    results: dict[str, list[float]] = {"tornado": [], "lean": []}
    for _ in range(args.rounds):
        for path in results:
            read_stream(ports[0], path)
            results[path].append(cpu.pop() / args.events * 1e6)
    for path, values in results.items():
        print(f"{path:8} µs/event (server thread CPU): " + "  ".join(f"{v:5.2f}" for v in values)
              + f"   best {min(values):5.2f}")
    print(f"lean/tornado (best of each): {min(results['lean']) / min(results['tornado']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
