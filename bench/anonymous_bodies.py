"""Memory held by anonymous request bodies: RSS of a gateway before, during and after
N token-less connections each send a body of nearly `max_body` to an authenticated route.

    python bench/anonymous_bodies.py                      # this checkout
    python bench/anonymous_bodies.py --repo /path/to/old  # another checkout, to compare

Not a test (it takes seconds and hundreds of MiB on a gateway that buffers them): it
prints the figures for a closing note. Default limits (max_body 32 MiB), 8 bodies of
30 MiB minus one byte, as in issue 8.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROUTES = """version: 1
server:
  listen: 127.0.0.1:{port}
secrets: secrets.yaml
providers:
  nowhere: {{url: "http://127.0.0.1:9/v1", api_key: sk-bench-unused-provider-key}}
agents:
  fast: {{models: [nowhere/gpt-4o-mini]}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: GET /healthz, handler: health}}
"""
SECRETS = "client_token: bench-token-loopback-only\n"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--mib", type=int, default=30)
    args = parser.parse_args()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="anon-bodies-"))
    (workdir / "routes.yaml").write_text(ROUTES.format(port=port))
    (workdir / "secrets.yaml").write_text(SECRETS)
    log = open(workdir / "gateway.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "gateway.py", "serve", "-c", str(workdir / "routes.yaml")],
                            cwd=args.repo, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            time.sleep(0.1)
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
        print(f"{args.repo}: {args.connections} anonymous bodies of {args.mib} MiB: RSS before "
              f"{before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB; answers: {', '.join(statuses)}")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
