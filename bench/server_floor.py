"""What the HTTP server path alone costs: the floor under the gateway's CPU per request.

    python -m bench.server_floor [--seconds 5] [--rounds 2]

Three servers answer POST /v1/chat/completions with the canned chat completion, no
upstream and no gateway logic, each on uvloop, pinned to core 0 (wrk on core 1,
concurrency 32, bench/wrk/chat.lua):

- `tornado`: a Tornado Application and RequestHandler behind Tornado's HTTPServer
  (HTTP1Connection, IOStream), as the gateway served until server/http1.py replaced it;
- `http1`: the same Application and RequestHandler behind the gateway's own HTTP/1.1
  server (server/http1.py: its Listener, connections and head reader; no Guard);
- `handler`: the gateway's own server, routing delegate and handler base
  (server/dispatch.py, handlers/base.GatewayHandler) in place of Tornado's Application
  and RequestHandler (no Guard, no accounting: `prepare` and `on_finish` do nothing);
- `lean`: the same Application and RequestHandler, driven by a minimal asyncio Protocol
  that parses the request itself and implements Tornado's HTTPConnection by writing to
  the transport (keep-alive and Content-Length bodies only: a measurement, not a server);
- `raw`: an asyncio Protocol that answers with prepared bytes (the loop's own floor).

Printed per round: rps and CPU µs per request of the server process. `tornado` minus
`http1` is what the gateway's own server saves per request, `http1` minus `handler` what
its own handler base saves; `lean` is about as little as a connection driving a
RequestHandler can cost, and `lean` minus `raw` is what Tornado's RequestHandler costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.processes import ROOT, free_port

WRK_SCRIPT = ROOT / "bench" / "wrk" / "chat.lua"
ANSWER = (ROOT / "bench" / "fixtures" / "openai-chat.json").read_bytes()
KINDS = ("tornado", "http1", "handler", "lean", "raw")


def _tornado_app() -> Any:
    import tornado.web

    class Canned(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(ANSWER)

    return tornado.web.Application([(r"/v1/chat/completions", Canned)])


async def _serve(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "tornado":
        from tornado.httpserver import HTTPServer

        HTTPServer(_tornado_app()).listen(port, "127.0.0.1")
    elif kind in ("http1", "handler"):
        from server.http1 import Listener

        router = _FloorRouter() if kind == "http1" else _HandlerRouter()
        listener = Listener(router, max_connections=10_000, idle_timeout=60.0)  # type: ignore[arg-type]
        await listener.listen(port, "127.0.0.1")
    else:
        await loop.create_server(lambda: _Requests(kind), "127.0.0.1", port)
    await asyncio.Event().wait()


class _FloorRouter:
    """What server/http1.py asks of the gateway's router, for the canned Application alone."""

    def __init__(self) -> None:
        self.app = _tornado_app()
        self.table = SimpleNamespace(server=SimpleNamespace(write_buffer=1 << 20))

    def find_handler(self, request: Any) -> Any:
        return self.app.find_handler(request)

    def ingress_for_head(self, head: bytes) -> str:
        return "openai"


class _HandlerRouter(_FloorRouter):
    """The same, with the gateway's routing delegate and handler base."""

    def __init__(self) -> None:
        from handlers.base import GatewayHandler
        from server.dispatch import Dispatch

        class Canned(GatewayHandler):
            def prepare(self) -> None:
                pass

            def on_finish(self) -> None:
                pass

            def post(self) -> None:
                self.set_header("Content-Type", "application/json")
                self.finish(ANSWER)

        super().__init__()
        self.dispatch, self.handler = Dispatch, Canned
        self.kwargs = {"route": None, "table": None, "runtime": None}

    def find_handler(self, request: Any) -> Any:
        return self.dispatch(request, self.handler, self.kwargs, {})


class _Requests(asyncio.Protocol):
    """Requests of one connection: answered with prepared bytes (`raw`), or handed to the
    Tornado Application through `_Connection` (`lean`)."""

    def __init__(self, kind: str) -> None:
        from tornado import httputil

        self.httputil = httputil
        self.app = _tornado_app() if kind == "lean" else None
        self.raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % len(ANSWER) + ANSWER)
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            first, _, rest = self.buffer[:end].decode("latin-1").partition("\r\n")
            headers = self.httputil.HTTPHeaders()
            for line in rest.split("\r\n"):
                name, _, value = line.partition(":")
                headers.add(name, value.strip())
            size = int(headers.get("Content-Length", "0"))
            if len(self.buffer) < end + 4 + size:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + size], self.buffer[end + 4 + size :]
            if self.app is None:
                self.transport.write(self.raw)
                continue
            delegate = self.app.start_request(None, _Connection(self.transport))
            delegate.headers_received(self.httputil.parse_request_start_line(first), headers)
            delegate.data_received(body)
            delegate.finish()


class _Connection:
    """Tornado's HTTPConnection, as little of it as a RequestHandler's finish() needs."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.context = _Context()

    def set_close_callback(self, callback: Any) -> None:
        pass

    def write_headers(self, start_line: Any, headers: Any, chunk: bytes | None = None) -> asyncio.Future:
        fields = (f"{name}: {value}" for name, value in headers.get_all())
        lines = [f"HTTP/1.1 {start_line.code} {start_line.reason}", *fields]
        self.parts.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return self.write(chunk or b"")

    def write(self, chunk: bytes) -> asyncio.Future:
        self.parts.append(chunk)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def finish(self) -> None:
        self.transport.write(b"".join(self.parts))


class _Context:
    remote_ip = "127.0.0.1"
    protocol = "http"


def _measure(kind: str, seconds: int) -> tuple[float, float]:
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "bench.server_floor",
                               "--serve", kind, "--port", str(port)], cwd=ROOT)
    try:
        time.sleep(1.5)
        stat = Path(f"/proc/{server.pid}/stat")
        before = sum(map(int, stat.read_text().rsplit(")", 1)[1].split()[11:13]))
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(WRK_SCRIPT),
               f"http://127.0.0.1:{port}"]
        env = {**os.environ, "BENCH_MODEL": "m", "BENCH_STREAM": "0"}
        out = subprocess.run(wrk, capture_output=True, text=True, check=True, env=env).stdout
        after = sum(map(int, stat.read_text().rsplit(")", 1)[1].split()[11:13]))
    finally:
        server.terminate()
        server.wait()
    requests = int(out.split('"requests": ')[1].split(",")[0])
    return requests / seconds, (after - before) / os.sysconf("SC_CLK_TCK") / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve(args.serve, args.port))
        return 0
    print(f"{'round':>5} {'server':8} {'req/s':>8} {'CPU µs/req':>11}")
    for round_ in range(1, args.rounds + 1):
        for kind in KINDS:
            rps, cpu = _measure(kind, args.seconds)
            print(f"{round_:>5} {kind:8} {rps:8.0f} {cpu:11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
