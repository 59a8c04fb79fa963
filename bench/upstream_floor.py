"""What the upstream side alone costs: the floor under the gateway's CPU per request.

    python -m bench.upstream_floor [--requests 20000] [--concurrency 32] [--rounds 2]

This process is the client, pinned to core 0, on uvloop; the upstream is the canned
provider (nginx answering POST /v1/chat/completions from bench/fixtures/, core 1).
`--concurrency` loops each send their share of `--requests` chat requests one after
another over kept-alive connections, three ways:

- `raw`: an asyncio Protocol writing prepared request bytes and reading each answer by
  its Content-Length (the event loop's own floor for a client);
- `driver`: libcurl's multi interface driven by the gateway's driver (upstream/driver.py),
  each easy handle's options set once: what libcurl and its socket and timer callbacks
  cost per request;
- `client`: the gateway's upstream client (upstream/client.py, handle.py, exchange.py)
  sending upstream/request.Request, as an attempt does: the handle set up per request,
  the answer's head read, the transfer's end reported to the exchange.

Printed per round: requests/s and this process's CPU µs per request. `driver` minus
`raw` is what libcurl costs beyond the loop, `client` minus `driver` what the gateway's
own upstream layer adds; with `python -m bench.server_floor` (the server side), they
tell how much of the gateway's CPU per request is left to its own logic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pycurl
import uvloop

from bench.run import Processes, find_nginx, free_ports, start_canned
from upstream.client import UpstreamClient
from upstream.driver import Driver
from upstream.exchange import Exchange
from upstream.request import Request, header_line

KINDS = ("raw", "driver", "client")
PATH = "/v1/chat/completions"
BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
HEADERS = (("Content-Type", "application/json"), ("Authorization", "Bearer bench"))


class _Answers(asyncio.Protocol):
    """One connection's answers, each complete once its Content-Length has arrived."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        if len(self.buffer) >= end + 4 + length and self.waiter is not None:
            self.buffer = self.buffer[end + 4 + length :]
            self.waiter.set_result(None)


async def _raw(port: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    fields = "".join(f"{name}: {value}\r\n" for name, value in HEADERS)
    request = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}Content-Length: {len(BODY)}\r\n\r\n"
    data = request.encode("latin-1") + BODY
    transport, answers = await loop.create_connection(_Answers, "127.0.0.1", port)
    for _ in range(count):
        answers.waiter = loop.create_future()
        transport.write(data)
        await answers.waiter
    transport.close()


def _driver_kind(port: int) -> tuple[Callable[[int], Awaitable[None]], Callable[[], None]]:
    waiting: dict[pycurl.Curl, asyncio.Future[int]] = {}

    def finished(handle: pycurl.Curl, error: int, message: str) -> None:
        waiting.pop(handle).set_result(error)

    driver = Driver(finished, 64)

    async def loop_of(count: int) -> None:
        handle = pycurl.Curl()
        handle.setopt(pycurl.URL, f"http://127.0.0.1:{port}{PATH}")
        handle.setopt(pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in HEADERS])
        handle.setopt(pycurl.POSTFIELDS, BODY)
        handle.setopt(pycurl.NOSIGNAL, 1)
        chunks: list[bytes] = []
        handle.setopt(pycurl.WRITEFUNCTION, chunks.append)
        for _ in range(count):
            waiter = waiting[handle] = asyncio.get_running_loop().create_future()
            driver.add(handle)
            assert await waiter == 0
            chunks.clear()
        handle.close()

    return loop_of, driver.close


def _client_kind(port: int) -> tuple[Callable[[int], Awaitable[None]], Callable[[], None]]:
    client = UpstreamClient(64)
    lines = [header_line(name, value) for name, value in HEADERS]

    async def loop_of(count: int) -> None:
        for _ in range(count):
            body = bytearray()
            exchange = Exchange(client, lambda _: None, body.extend)
            ended = await exchange.send(Request(f"http://127.0.0.1:{port}{PATH}", "POST", lines, BODY,
                                                30_000, 5_000))
            assert ended.status == 200 and not ended.failed, ended

    return loop_of, client.close


async def _run(kind: str, port: int, requests: int, concurrency: int) -> None:
    share = requests // concurrency
    if kind == "raw":
        await asyncio.gather(*(_raw(port, share) for _ in range(concurrency)))
        return
    loop_of, close = (_driver_kind if kind == "driver" else _client_kind)(port)
    try:
        await asyncio.gather(*(loop_of(share) for _ in range(concurrency)))
    finally:
        close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nginx = find_nginx()
    if nginx is None:
        print("needs nginx (apt-get install -y nginx)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="gw-upstream-floor-"))
    procs = Processes(tmp)
    try:
        (port,) = free_ports(1)
        start_canned(procs, tmp, nginx, port, 1)
        time.sleep(0.5)
        os.sched_setaffinity(0, {0})
        done = args.requests // args.concurrency * args.concurrency
        print(f"{'round':>5} {'client':8} {'req/s':>8} {'CPU µs/req':>11}")
        for round_ in range(1, args.rounds + 1):
            for kind in KINDS:
                cpu, wall = time.process_time(), time.monotonic()
                uvloop.run(_run(kind, port, args.requests, args.concurrency))
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                print(f"{round_:>5} {kind:8} {done / wall:8.0f} {cpu / done * 1e6:11.1f}")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
