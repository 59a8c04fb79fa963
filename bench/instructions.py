"""The gateway's CPU instructions per request or per relayed event, counted by callgrind.

    python -m bench.instructions [--cases bench:json,bench:stream] [--requests 200]
    python -m bench.instructions --events [--streams 20] [--model bench]

On a shared machine timings move by tens of per cent from one minute to the next;
instruction counts repeat to about 0.5 %, so a change of a few thousand instructions per
request can be told apart, and kept or dropped, without a quiet machine. The gateway
(routes.bench.yaml: auth, metrics and access log on) runs under valgrind's callgrind with
counting off until its warm-up requests are done; the count covers user-space work only
(system calls and the kernel's share are not in it: see bench/run.py for those).

- default: each `model:json|stream` case sends `--requests` chat completions one after
  another to the canned provider (nginx, bench/fixtures/), and prints the instructions
  per request;
- `--events`: `--streams` streams of 50 events from the trickling provider
  (bench/trickle.py, one event per read), and prints the instructions per relayed event,
  each stream's set-up included, as bench/streams.py counts its CPU.

Needs valgrind (apt-get install -y valgrind). Takes about 30 s a case.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.run import (
    SECRETS_FILE,
    TOKEN,
    BenchError,
    Processes,
    bench_routes,
    find_nginx,
    free_ports,
    start_canned,
)

WARMUP = 30  # requests before counting: imports, caches and pools settle
EVENTS = 50  # per trickled stream


def _gateway(procs: Processes, tmp: Path, port: int, upstream_port: int) -> subprocess.Popen[bytes]:
    """The gateway under callgrind, counting nothing yet; returns once it accepts connections."""
    secrets = tmp / "secrets.bench.yaml"
    shutil.copyfile(SECRETS_FILE, secrets)
    secrets.chmod(0o600)
    text, values = bench_routes(port, secrets, upstream_port)
    routes = tmp / "routes.bench.yaml"
    routes.write_text(text)
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.%p", "--instr-atstart=no",
            sys.executable, "gateway.py", "serve", "-c", str(routes)]
    gateway = procs.start("gateway", argv, 0, env=dict(os.environ, **values))
    deadline = time.monotonic() + 300  # valgrind starts Python some fifty times slower
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return gateway
        except OSError:
            time.sleep(0.5)
    raise BenchError("the gateway did not start under valgrind")


class _Client:
    """Chat completions one after another over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def chat(self, model: str, stream: bool) -> bytes:
        body = json.dumps({"model": model, "stream": stream,
                           "messages": [{"role": "user", "content": "Hello there, how are you?"}]})
        self.connection.request("POST", "/v1/chat/completions", body,
                                {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        answer = self.connection.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise BenchError(f"{model}: {answer.status} {data[:200]!r}")
        return data


def _count(gateway: subprocess.Popen[bytes], tmp: Path, work: Callable[[], object]) -> int:
    """The instructions the gateway ran while `work()` ran."""
    pid = str(gateway.pid)
    subprocess.run(["callgrind_control", "--instr=on", pid], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "--zero", pid], capture_output=True, check=True)
    work()
    subprocess.run(["callgrind_control", "--dump", pid], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "--instr=off", pid], capture_output=True, check=True)
    newest = max(glob.glob(f"{tmp}/callgrind.{pid}*"), key=os.path.getmtime)
    with open(newest) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise BenchError(f"no total in {newest}")


def per_request(cases: list[tuple[str, bool]], requests: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gw-instructions-"))
    procs = Processes(tmp)
    try:
        canned_port, port = free_ports(2)
        start_canned(procs, tmp, find_nginx(), canned_port, 1)
        gateway = _gateway(procs, tmp, port, canned_port)
        client = _Client(port)
        for model, stream in cases:
            for _ in range(WARMUP):
                client.chat(model, stream)
            def send(model: str = model, stream: bool = stream) -> None:
                for _ in range(requests):
                    client.chat(model, stream)

            total = _count(gateway, tmp, send)
            kind = "stream" if stream else "json"
            print(f"{model:14} {kind:6} {total / requests / 1000:8.1f} K instructions/request", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def per_event(model: str, streams: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gw-instructions-"))
    procs = Processes(tmp)
    try:
        trickle_port, port = free_ports(2)
        procs.start("trickle", [sys.executable, "-m", "bench.trickle", "--port", str(trickle_port),
                                "--events", str(EVENTS), "--rate", "200"], 1)
        gateway = _gateway(procs, tmp, port, trickle_port)
        client = _Client(port)
        for _ in range(5):
            client.chat(model, True)
        relayed: list[int] = []
        def send() -> None:
            relayed.extend(client.chat(model, True).count(b"data: ") for _ in range(streams))

        total = _count(gateway, tmp, send)
        events = sum(relayed)
        print(f"{model}: {events} events over {streams} streams: "
              f"{total / events / 1000:.1f} K instructions/event (set-up included)", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="bench:json,bench:stream",
                        help="comma-separated model:json|stream (models of routes.bench.yaml: bench, "
                             "bench-conv, bench-redact)")
    parser.add_argument("--requests", type=int, default=200, help="counted requests per case")
    parser.add_argument("--events", action="store_true", help="per relayed event of trickled streams instead")
    parser.add_argument("--streams", type=int, default=20, help="counted streams with --events")
    parser.add_argument("--model", default="bench", help="the model streamed with --events")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is missing: apt-get install -y valgrind", file=sys.stderr)
        return 2
    try:
        if args.events:
            per_event(args.model, args.streams)
        else:
            cases = []
            for case in args.cases.split(","):
                model, _, kind = case.partition(":")
                if kind not in ("json", "stream"):
                    parser.error(f"a case is model:json or model:stream, not {case!r}")
                cases.append((model, kind == "stream"))
            per_request(cases, args.requests)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
