"""Memory held by anonymous request bodies: RSS of a gateway before, during and after
N token-less connections each send a body of nearly `max_body` to an authenticated route.

    python -m bench.anonymous_bodies                      # this checkout
    python -m bench.anonymous_bodies --root /path/to/old  # another checkout, to compare

Not a test (it takes seconds and hundreds of MiB on a gateway that buffers them): it
prints the figures for a closing note. Default limits (max_body 32 MiB), 8 bodies of
30 MiB minus one byte, as in issue 8.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.processes import ROOT, rss_mib, start_gateway, stop

ROUTES = """version: 1
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
secrets: secrets.yaml
providers:
  nowhere: {url: "http://127.0.0.1:9/v1", api_key: sk-bench-unused-provider-key}
agents:
  fast: {models: [nowhere/gpt-4o-mini]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
"""
SECRETS = "client_token: bench-token-loopback-only\n"


def send_body(port: int, size: int, answers: list[bytes]) -> None:
    """Headers without a token, then the body in 1 MiB pieces, as long as the server reads."""
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size + 1}\r\n\r\n").encode()
    piece = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):
            for offset in range(0, size, len(piece)):
                sock.sendall(piece[: min(len(piece), size - offset)])
        sock.settimeout(3)  # hold the connection a while, as an attacker would (until body_timeout)
        try:
            answers.append(sock.recv(200))
        except OSError:
            answers.append(b"")  # no answer: the server still waits for the last byte


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose gateway.py to run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--mib", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="anon-bodies-"))
    proc, port = start_gateway(Path(args.root), ROUTES, SECRETS, workdir, log=workdir / "gateway.log")
    try:
        before = rss_mib(proc.pid)
        answers: list[bytes] = []
        threads = [threading.Thread(target=send_body, args=(port, args.mib * (1 << 20) - 1, answers))
                   for _ in range(args.connections)]
        for thread in threads:
            thread.start()
        peak = before
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.05)
        time.sleep(0.5)
        after = rss_mib(proc.pid)
        statuses = sorted({a.split(b" ", 2)[1].decode() if a.startswith(b"HTTP/") else "none"
                           for a in answers})
        print(f"{args.root}: {args.connections} anonymous bodies of {args.mib} MiB: RSS before "
              f"{before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB; answers: {', '.join(statuses)}")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
