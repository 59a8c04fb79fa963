"""Gateway memory over a long run: RSS after the first requests and after all of them.

    python -m bench.long_run [--requests 200000] [--first 10000] [--concurrency 32] [--quick]

The gateway (routes.bench.yaml: auth, metrics and access log on) in front of the
canned provider (bench/canned.conf.template), pinned as in bench/run.py: the
gateway on one core, the canned provider and the client (this process) on the
other. The client keeps --concurrency keep-alive connections busy with chat
completions, cycling through plain and streamed, native (model bench) and
converted (model bench-conv), and checks every answer's status and end. Prints
the gateway's RSS (summed over its processes) at start, after --first requests,
at every tenth of the run, and at the end; issue 14's bound is the end within
5 MB of the value after the first 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import status_mib
from bench.run import (
    CONV_MODEL,
    GATEWAY_MODEL,
    TOKEN,
    BenchError,
    Processes,
    find_nginx,
    free_ports,
    group_pids,
    sigterm_as_interrupt,
    start_canned,
    start_gateway,
    wait_ready,
)

END = b"\r\n0\r\n\r\n"


def requests_cycle(port: int) -> list[bytes]:
    """The requests the client cycles through: plain and streamed, native and converted."""
    out = []
    for model in (GATEWAY_MODEL, CONV_MODEL):
        for stream in (False, True):
            body = json.dumps({"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": "Say hello."}]}).encode()
            out.append((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    return out


class Load:
    """--concurrency connections sending requests until `total` have been answered."""

    def __init__(self, port: int, total: int) -> None:
        self.port, self.total = port, total
        self.cycle = requests_cycle(port)
        self.sent = 0
        self.done = 0
        self.errors = 0
        self.first_error = ""
        self.checkpoints: dict[int, asyncio.Event] = {}

    def checkpoint(self, count: int) -> asyncio.Event:
        return self.checkpoints.setdefault(count, asyncio.Event())

    async def connection(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while self.sent < self.total:
                request = self.cycle[self.sent % len(self.cycle)]
                self.sent += 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                if b"content-length:" in lower:
                    await reader.readexactly(int(lower.split(b"content-length:")[1].split(b"\r\n")[0]))
                else:
                    await reader.readuntil(END)
                if not head.startswith(b"HTTP/1.1 200"):
                    self.errors += 1
                    self.first_error = self.first_error or head.split(b"\r\n")[0].decode()
                self.done += 1
                event = self.checkpoints.get(self.done)
                if event is not None:
                    event.set()
        finally:
            writer.close()

    async def run(self, concurrency: int) -> None:
        await asyncio.gather(*(self.connection() for _ in range(concurrency)))


async def drive(port: int, pgid: int, args: argparse.Namespace) -> tuple[list[tuple[int, float]], Load]:
    load = Load(port, args.requests)
    marks = sorted({args.first, *(args.requests * k // 10 for k in range(1, 11))} - {0})
    samples = [(0, status_mib(group_pids(pgid)))]
    running = asyncio.create_task(load.run(args.concurrency))
    started = time.monotonic()
    for mark in marks:
        waiting = asyncio.create_task(load.checkpoint(mark).wait())
        await asyncio.wait({waiting, running}, return_when=asyncio.FIRST_COMPLETED)
        if running.done() and not waiting.done():
            waiting.cancel()
            break
        samples.append((mark, status_mib(group_pids(pgid))))
        print(f"  {mark:8d} requests  {time.monotonic() - started:6.0f} s  RSS {samples[-1][1]:7.1f} MiB"
              f"  errors {load.errors}", flush=True)
    await running
    return samples, load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.long_run", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=200_000, help="requests in all (default 200000)")
    p.add_argument("--first", type=int, default=10_000, help="RSS baseline after this many (10000)")
    p.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    p.add_argument("--quick", action="store_true", help="smoke run: --requests 20000 --first 2000")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.first = 20_000, 2_000
    nginx = find_nginx()
    if not nginx:
        print("nginx is missing: apt-get install -y nginx", file=sys.stderr)
        return 2
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="gw-long-run-"))
    procs = Processes(tmp)
    try:
        with sigterm_as_interrupt():
            if load_core is not None:
                os.sched_setaffinity(0, {load_core})
            canned_port, gateway_port = free_ports(2)
            start_canned(procs, tmp, nginx, canned_port, load_core)
            wait_ready(procs, "canned", f"http://127.0.0.1:{canned_port}/_canned/health", b"OK", 10)
            gateway = start_gateway(procs, tmp, gateway_port, canned_port, server_core)
            wait_ready(procs, "gateway", f"http://127.0.0.1:{gateway_port}/healthz", b"OK", 30)
            print(f"{args.requests} requests at concurrency {args.concurrency} "
                  f"(plain/stream x {GATEWAY_MODEL}/{CONV_MODEL}); loadavg "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            samples, load = asyncio.run(drive(gateway_port, gateway.pid, args))
    except BenchError as e:
        print(f"bench.long_run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench.long_run: interrupted; all processes stopped", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    rss = dict(samples)
    first, last = rss.get(args.first), samples[-1][1]
    print(f"\nRSS at start {samples[0][1]:.1f} MiB; after {args.first} requests "
          f"{'n/a' if first is None else f'{first:.1f}'} MiB; after {load.done} requests {last:.1f} MiB; "
          f"growth since the first {args.first}: "
          f"{'n/a' if first is None else f'{last - first:+.1f}'} MiB "
          f"(issue 14's bound: within 5 MB); errors {load.errors} {load.first_error}")
    return 1 if load.errors or load.done < args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
