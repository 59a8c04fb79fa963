"""The streams scenario: many concurrent SSE streams trickled by the upstream, as a model
generates them, relayed by nginx and by the gateway.

    python -m bench.streams [--streams 1000] [--events 50] [--rate 20]
                            [--warmup 5] [--duration 10] [--targets nginx,gateway] [--quick]

The upstream is bench/trickle.py: every stream is --events SSE events (the last
`data: [DONE]`) at --rate events/s, so --streams open streams offer
streams x rate events/s (default 1,000 x 20 = 20,000). The client (this process)
keeps --streams connections busy, each asking for one stream after another,
their starts spread over one stream's length so that the load is steady; it
counts `data:` events as they arrive and checks every stream it finishes: HTTP
200, exactly --events events, the last `data: [DONE]`, the chunked end. The
server under test (nginx or the gateway, routes.bench.yaml: auth, metrics and
access log on) runs on one core; the trickler and the client on the other.

Per target, after --warmup s, over --duration s: events offered per second (what
the trickler wrote) and relayed per second (what the client got); the server's
CPU in % of its core and in µs per relayed event (stream set-up included, as it
happens within the window); its peak RSS (VmHWM, summed over its processes).
Streams cut short or wrong are counted and fail the run (exit 1).

Two more targets, not run unless named, measure floors (bench/stream_floor.py):
`floor-pipe`, an asyncio byte pipe, and `floor-curl`, the gateway's libcurl driver with a
minimal relay behind it. The gateway minus `floor-curl` is what its own logic costs per
event; `floor-curl` is as low as a relay on the gateway's stack can go.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.processes import status_mib
from bench.run import (
    GATEWAY_MODEL,
    TOKEN,
    BenchError,
    Processes,
    core_times,
    find_nginx,
    free_ports,
    group_cpu_seconds,
    group_pids,
    guarded,
    machine_info,
    start_gateway,
    start_nginx,
    wait_ready,
)

TARGETS = ("nginx", "gateway", "floor-pipe", "floor-curl")
DEFAULT_TARGETS = ("nginx", "gateway")
FLOORS = {"floor-pipe": "pipe", "floor-curl": "curl"}  # bench/stream_floor.py's kinds
DONE = b"data: [DONE]"
EVENT = b"data: "
END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked answer, after the last data chunk's CRLF
TAIL = 32  # bytes kept from the previous read: enough for DONE, its blank line and END


@dataclass
class Tally:
    """What the client saw, across all its connections."""

    events: int = 0
    completed: int = 0
    failed: int = 0
    first_failure: str = ""

    def fail(self, why: str) -> None:
        self.failed += 1
        self.first_failure = self.first_failure or why


class Stream:
    """One keep-alive client connection, asking for one stream after another."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.in_stream = False
        self.events, self.head, self.tail = 0, b"", b""

    def ask(self, request: bytes) -> None:
        self.in_stream, self.events, self.head, self.tail = True, 0, b"", b""
        self.sock.sendall(request)

    def take(self, data: bytes, tally: Tally, expected: int) -> bool:
        """Count what arrived; True once the stream has ended (checked into `tally`)."""
        if not self.head:
            self.head = data[:12]
        # The previous read's last bytes joined to this one: an event split between two
        # reads is counted once, in the join, and those wholly in the tail are not recounted.
        joined = self.tail + data
        seen = joined.count(EVENT) - self.tail.count(EVENT)
        self.events += seen
        tally.events += seen
        self.tail = joined[-TAIL:]
        if not self.tail.endswith(END):
            return False
        if not self.head.startswith(b"HTTP/1.1 200"):
            tally.fail(f"status line {self.head!r}")
        elif self.events != expected:
            tally.fail(f"{self.events} events, not {expected}")
        elif DONE not in self.tail:
            tally.fail("the last event is not data: [DONE]")
        else:
            tally.completed += 1
        self.in_stream = False
        return True


class ClientRun:
    """--streams connections to one target, opened over one stream's length, driven by a
    plain epoll loop: per read, a recv and a count, nothing else (an asyncio protocol
    costs about twice as much per event, and the client shares its core)."""

    def __init__(self, port: int, model: str, streams: int, events: int, rate: float) -> None:
        # Usage asked for, as OpenAI's SDK users who count tokens do: the gateway then relays the
        # trickler's usage chunk too, and every target relays all --events events.
        body = json.dumps({"model": model, "stream": True, "stream_options": {"include_usage": True},
                           "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.port, self.streams, self.events = port, streams, events
        self.stream_s = events / rate
        self.tally = Tally()
        self.epoll = select.epoll()
        self.open: dict[int, Stream] = {}
        self.going = True

    def connect(self) -> None:
        """Start a connection without waiting for it (a server slow to accept must not stall
        the reads of the others); its first request goes out once it is writable."""
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        self.open[sock.fileno()] = Stream(sock)
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def connected(self, fd: int, stream: Stream) -> None:
        error = stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.tally.fail(f"connect: {os.strerror(error)}")
            self.close(fd)
            return
        self.epoll.modify(fd, select.EPOLLIN)
        stream.ask(self.request)

    def run_until(self, deadline: float) -> None:
        """Serve the connections (and open the ones due) until time.monotonic() >= deadline."""
        while (now := time.monotonic()) < deadline:
            if len(self.open) < self.streams and self.going:
                due = self.t0 + len(self.open) * self.stream_s / self.streams
                while len(self.open) < self.streams and due <= now:
                    self.connect()
                    due = self.t0 + len(self.open) * self.stream_s / self.streams
                wait = min(deadline, due) - now
            else:
                wait = deadline - now
            for fd, mask in self.epoll.poll(max(0.0, min(wait, 0.05))):
                stream = self.open[fd]
                if mask & select.EPOLLOUT:
                    self.connected(fd, stream)
                    continue
                try:
                    data = stream.sock.recv(1 << 16)
                except OSError as e:
                    data, why = b"", str(e)
                else:
                    why = "closed by the server"
                if not data:
                    if stream.in_stream:
                        self.tally.fail(f"{why} mid-stream after {stream.events} events")
                        stream.in_stream = False
                    self.close(fd)
                elif stream.take(data, self.tally, self.events) and self.going:
                    stream.ask(self.request)

    def start(self) -> None:
        self.t0 = time.monotonic()

    def drain(self, timeout: float) -> None:
        """Ask for no more streams; wait for the open ones to end, then close everything."""
        self.going = False
        deadline = time.monotonic() + timeout
        while any(s.in_stream for s in self.open.values()) and time.monotonic() < deadline:
            self.run_until(min(deadline, time.monotonic() + 0.1))
        for fd in list(self.open):
            if self.open[fd].in_stream:
                self.tally.fail("still open after the drain timeout")
            self.close(fd)
        self.epoll.close()

    def close(self, fd: int) -> None:
        self.epoll.unregister(fd)
        self.open.pop(fd).sock.close()


def trickle_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_trickle/stats", timeout=5) as answer:
        return json.loads(answer.read())


@dataclass
class StreamsResult:
    target: str
    offered_eps: float
    relayed_eps: float
    open_streams: int  # streams the trickler was sending at the end of the window
    cpu_pct: float
    load_core_pct: float | None  # how busy the trickler + client core was (everything on it)
    trickler_pct: float  # the trickler's share of that core
    client_pct: float  # the client's (this process's) share of it
    cpu_us_per_event: float | None
    peak_rss_mib: float
    completed: int
    failed: int
    first_failure: str


def measure(target: str, port: int, pgid: int, trickle_port: int, trickle_pgid: int,
            load_core: int | None, args: argparse.Namespace) -> StreamsResult:
    """One target: warm up, measure over --duration, then let the open streams finish."""
    run = ClientRun(port, GATEWAY_MODEL if target == "gateway" else "gpt-4o-mini", args.streams,
                    args.events, args.rate)
    run.start()
    run.run_until(run.t0 + args.warmup)
    offered0, relayed0 = trickle_stats(trickle_port)["events"], run.tally.events
    cpu0, t0, (busy0, total0) = group_cpu_seconds(pgid), time.monotonic(), core_times(load_core)
    side0 = group_cpu_seconds(trickle_pgid), sum(os.times()[:2])
    run.run_until(t0 + args.duration)
    stats = trickle_stats(trickle_port)
    offered1, relayed1 = stats["events"], run.tally.events
    cpu1, elapsed, (busy1, total1) = group_cpu_seconds(pgid), time.monotonic() - t0, core_times(load_core)
    side1 = group_cpu_seconds(trickle_pgid), sum(os.times()[:2])
    run.drain(timeout=2 * run.stream_s + 10)
    relayed = relayed1 - relayed0
    return StreamsResult(
        target=target, offered_eps=(offered1 - offered0) / elapsed, relayed_eps=relayed / elapsed,
        cpu_pct=100 * (cpu1 - cpu0) / elapsed,
        load_core_pct=100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None,
        trickler_pct=100 * (side1[0] - side0[0]) / elapsed,
        client_pct=100 * (side1[1] - side0[1]) / elapsed,
        cpu_us_per_event=1e6 * (cpu1 - cpu0) / relayed if relayed else None,
        open_streams=stats["open"], peak_rss_mib=status_mib(group_pids(pgid), "VmHWM"),
        completed=run.tally.completed, failed=run.tally.failed, first_failure=run.tally.first_failure,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams (default 1000)")
    p.add_argument("--events", type=int, default=50, help="events per stream, [DONE] included")
    p.add_argument("--rate", type=float, default=20, help="events/s per stream (default 20)")
    p.add_argument("--warmup", type=float, default=5, help="seconds before measuring (default 5)")
    p.add_argument("--duration", type=float, default=10, help="seconds measured (default 10)")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                   help=f"a comma-separated subset of {','.join(TARGETS)} (default nginx,gateway)")
    p.add_argument("--quick", action="store_true", help="smoke run: --warmup 3 --duration 4")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the results here")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 3, 4
    args.targets = [t for t in TARGETS if t in args.targets.split(",")]
    if not args.targets:
        p.error(f"--targets: choose from {','.join(TARGETS)}")
    return args


def raise_fd_limit(needed: int) -> None:
    """Every stream holds a client socket here and two in the server under test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise BenchError(f"open files limit {hard} < {needed}: raise `ulimit -n` (hard limit)")


def run(args: argparse.Namespace) -> int:
    nginx = find_nginx()
    if not nginx:
        raise BenchError("nginx is missing: apt-get install -y nginx")
    raise_fd_limit(3 * args.streams + 200)
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    info = machine_info(nginx)
    print(f"{args.streams} streams x {args.events} events at {args.rate:g}/s "
          f"= {args.streams * args.rate:,.0f} events/s offered; "
          f"{args.warmup:g}s warm-up, {args.duration:g}s measured per target; "
          f"server core {server_core}, trickler + client core {load_core}; "
          f"loadavg {' '.join(map(str, info['loadavg']))}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gw-streams-"))
    procs = Processes(tmp)
    results: list[StreamsResult] = []
    try:
        if load_core is not None:
            os.sched_setaffinity(0, {load_core})  # the client: this process
        trickle_port, nginx_port, gateway_port, *floor_ports = free_ports(2 + len(TARGETS))
        trickle = procs.start("trickle", [sys.executable, "-m", "bench.trickle", "--port", str(trickle_port),
                                "--events", str(args.events), "--rate", str(args.rate)], load_core)
        wait_ready(procs, "trickle", f"http://127.0.0.1:{trickle_port}/_trickle/health", b"OK", 10)
        pgids = {}
        if "nginx" in args.targets:
            pgids["nginx"] = start_nginx(procs, tmp, nginx, nginx_port, trickle_port, server_core).pid
            wait_ready(procs, "nginx", f"http://127.0.0.1:{nginx_port}/_trickle/health", b"OK", 10)
        if "gateway" in args.targets:
            pgids["gateway"] = start_gateway(procs, tmp, gateway_port, trickle_port, server_core).pid
            wait_ready(procs, "gateway", f"http://127.0.0.1:{gateway_port}/healthz", b"OK", 30)
        ports = {"nginx": nginx_port, "gateway": gateway_port}
        for (target, kind), port in zip(FLOORS.items(), floor_ports, strict=False):
            ports[target] = port
            if target in args.targets:
                argv = [sys.executable, "-m", "bench.stream_floor", "--kind", kind,
                        "--port", str(port), "--upstream-port", str(trickle_port)]
                pgids[target] = procs.start(target, argv, server_core).pid
                wait_ready(procs, target, f"http://127.0.0.1:{port}/_trickle/health", b"OK", 10)
        for target in args.targets:
            result = measure(target, ports[target], pgids[target], trickle_port, trickle.pid,
                             load_core, args)
            results.append(result)
            print(f"  {target:8} offered {result.offered_eps:8.0f}/s  relayed {result.relayed_eps:8.0f}/s"
                  f"  cpu {result.cpu_pct:4.0f}%  {_fmt(result.cpu_us_per_event)} µs/event  "
                  f"peak RSS {result.peak_rss_mib:6.1f} MiB  streams {result.completed} ok, "
                  f"{result.failed} failed {result.first_failure}", flush=True)
    finally:
        procs.stop_all()
        if args.keep_tmp:
            print(f"kept temp dir: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_report(results, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "settings": {
            "streams": args.streams, "events": args.events, "rate": args.rate,
            "warmup_s": args.warmup, "duration_s": args.duration},
            "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return 1 if any(r.failed for r in results) else 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def print_report(results: list[StreamsResult], args: argparse.Namespace) -> None:
    print(f"\nStreams: {args.streams} x {args.events} events at {args.rate:g}/s; "
          f"{args.duration:g}s measured after {args.warmup:g}s")
    head = (f"{'target':8} {'open':>5} {'offered/s':>10} {'relayed/s':>10} {'relayed%':>8} {'cpu%':>5} "
            f"{'µs/event':>9} {'peak RSS MiB':>12} {'load cpu%':>9} {'trickle/client':>14} "
            f"{'streams ok':>10} {'failed':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        share = 100 * r.relayed_eps / r.offered_eps if r.offered_eps else 0
        print(f"{r.target:8} {r.open_streams:5d} {r.offered_eps:10.0f} {r.relayed_eps:10.0f} {share:8.0f} "
              f"{r.cpu_pct:5.0f} {_fmt(r.cpu_us_per_event):>9} {r.peak_rss_mib:12.1f} "
              f"{'n/a' if r.load_core_pct is None else f'{r.load_core_pct:.0f}':>9} "
              f"{f'{r.trickler_pct:.0f}/{r.client_pct:.0f}':>14} "
              f"{r.completed:10d} {r.failed:6d}")
    print(f"loadavg at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}. open: streams "
          f"the upstream was sending at the end ({args.streams} asked for); fewer, and offered/s "
          f"below {args.streams * args.rate:,.0f}:\nthe server is slow to set streams up. relayed% "
          "below 100: it falls behind the events. Either with cpu% near 100: the server is the "
          "bound;\nwith load cpu% near 100 instead (trickle/client: their shares), the load side is.")


def main(argv: list[str] | None = None) -> int:
    return guarded("bench.streams", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
