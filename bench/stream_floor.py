"""The floors under the gateway's CPU per streamed event: two relays that do nothing else.

    python -m bench.stream_floor --kind pipe|curl --port PORT --upstream-port UPSTREAM

Run by bench/streams.py as the targets `floor-pipe` and `floor-curl`, on the server's core,
in front of the same trickling upstream as nginx and the gateway:

- `pipe`: an asyncio byte pipe on uvloop. Each client connection gets one upstream
  connection; bytes go each way as they come, unparsed (the upstream's head and chunked
  framing reach the client as sent). What the event loop alone costs per relayed event: a
  read callback, a recv and a write.
- `curl`: the gateway's libcurl driver (upstream/driver.py) on uvloop, a pooled easy handle per
  request (its options set once), each request's head read only for its length, each body
  chunk framed and written from libcurl's write callback: what the gateway's stack (loop,
  libcurl, pycurl) costs per event before any of the gateway's own logic.

Neither is a server: one request at a time per connection, Content-Length bodies only, no
back-pressure, no errors answered. They are measurements: the gateway's µs per event minus
`floor-curl`'s is what its own logic costs, and `floor-curl` minus `floor-pipe` what libcurl
and pycurl cost.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import cast

import pycurl
import uvloop

from upstream.driver import Driver

ANSWER_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


class PipeUpstream(asyncio.Protocol):
    """The upstream side of a byte pipe: what arrives goes to the client as it is."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not asyncio's class

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class PipeClient(asyncio.Protocol):
    """The client side: opens its upstream connection, holds what comes before it is up."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.upstream: PipeUpstream | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not asyncio's class
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.upstream = await loop.create_connection(lambda: PipeUpstream(self.transport),
                                                        "127.0.0.1", self.upstream_port)
        assert self.upstream.transport is not None
        for data in self.early:
            self.upstream.transport.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None or self.upstream.transport is None:
            self.early.append(data)
        else:
            self.upstream.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class CurlRelay:
    """The driver, the pooled handles, and the upstream's address."""

    def __init__(self, upstream_port: int) -> None:
        self.base = f"http://127.0.0.1:{upstream_port}"
        self.driver = Driver(self._finished, max_idle_connections=4096)
        self.pool: list[CurlHandle] = []
        self.handles: dict[pycurl.Curl, CurlHandle] = {}

    def start(self, client: CurlClient, method: bytes, path: bytes, body: bytes) -> None:
        if self.pool:
            handle = self.pool.pop()
        else:
            handle = CurlHandle()
            self.handles[handle.curl] = handle
        handle.begin(client, f"{self.base}{path.decode()}", method == b"POST", body)
        self.driver.add(handle.curl)

    def _finished(self, curl: pycurl.Curl, error: int, message: str) -> None:
        handle = self.handles[curl]
        client = handle.client
        handle.client = None
        self.pool.append(handle)
        if client is not None:
            client.ended()


class CurlHandle:
    """One easy handle: everything but the URL and the body set once."""

    __slots__ = ("curl", "client", "lines")

    def __init__(self) -> None:
        self.curl = curl = pycurl.Curl()
        self.client: CurlClient | None = None
        self.lines: list[bytes] = []
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.TCP_NODELAY, 1)
        curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"])
        curl.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, self.write)

    def begin(self, client: CurlClient, url: str, post: bool, body: bytes) -> None:
        self.client = client
        self.lines.clear()
        self.curl.setopt(pycurl.URL, url)
        if post:
            self.curl.setopt(pycurl.POSTFIELDS, body)
        else:
            self.curl.setopt(pycurl.HTTPGET, 1)

    def write(self, data: bytes) -> None:
        client = self.client
        if client is not None:
            client.transport.write(b"%x\r\n%b\r\n" % (len(data), data))


class CurlClient(asyncio.Protocol):
    """A client connection of the curl floor: one request at a time, relayed through libcurl."""

    def __init__(self, relay: CurlRelay) -> None:
        self.relay = relay
        self.buffer = b""
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not asyncio's class

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        """Start the buffered request, once whole, unless one is running."""
        if self.busy:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        method, path, _ = self.buffer[:self.buffer.find(b"\r\n")].split(b" ", 2)
        body = self.buffer[end + 4:end + 4 + length]
        self.buffer = self.buffer[end + 4 + length:]
        self.busy = True
        self.transport.write(ANSWER_HEAD)
        self.relay.start(self, method, path, body)

    def ended(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(LAST_CHUNK)
        self.busy = False
        self._next()


async def serve(kind: str, port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "pipe":
        server = await loop.create_server(lambda: PipeClient(upstream_port), "127.0.0.1", port,
                                          backlog=4096)
    else:
        relay = CurlRelay(upstream_port)
        server = await loop.create_server(lambda: CurlClient(relay), "127.0.0.1", port, backlog=4096)
    for sock in server.sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=("pipe", "curl"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.kind, args.port, args.upstream_port))


if __name__ == "__main__":
    main()
