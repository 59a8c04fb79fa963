"""Gateway memory with slow readers of a large streamed answer.

    python -m bench.slow_readers [--readers 4] [--mib 200] [--rate-kib 10] [--seconds 20]
                                 [--answer chat|speech] [--root DIR] [--write-buffer 1MiB]

Starts the mock provider and a gateway (from this checkout, or the one at
--root, to compare against another version), then opens --readers
raw-socket clients that each ask for a --mib MiB answer and read it at
--rate-kib KiB/s (0: not at all) for --seconds: a chat stream (the mock's
``big-<KiB>`` model, SSE through the chat handler) or speech audio (a plain
body through the forward handler). Prints the gateway's RSS before, at the end
of that time, and after the readers have left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import tempfile
import time
from pathlib import Path

from bench.processes import ROOT, rss_mib, start_gateway, start_mock, stop

TOKEN = "bench-slow-readers-token"
SECRETS = f"client_token: {TOKEN}\n"


ROUTES = """version: 1
secrets: secrets.yaml
providers:
  mock: {url: %(mock)s/v1}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/audio/speech, handler: forward}
  - {match: GET /healthz, handler: health}
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  access_log: false
"""


def _reader(port: int, mib: int, answer: str) -> socket.socket:
    if answer == "chat":
        path = "/v1/chat/completions"
        document = {"model": f"mock/gpt-big-{mib * 1024}", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}
    else:
        path = "/v1/audio/speech"
        document = {"model": "tts-1", "input": "slow", "voice": "alloy", "x_mock_bytes": mib << 20}
    body = json.dumps(document).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    sock.setblocking(False)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--mib", type=int, default=200, help="size of each answer's text (MiB)")
    parser.add_argument("--rate-kib", type=float, default=10, help="each reader's pace (KiB/s); 0: none")
    parser.add_argument("--seconds", type=float, default=20, help="how long the readers stay")
    parser.add_argument("--answer", choices=("chat", "speech"), default="chat")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose gateway.py to run")
    parser.add_argument("--write-buffer", help="server.write_buffer to configure (default: none set)")
    args = parser.parse_args()
    mock, mock_url = start_mock()
    gateway = None
    with tempfile.TemporaryDirectory() as workdir:
        try:
            routes = ROUTES % {"mock": mock_url}
            if args.write_buffer:
                routes += f"  write_buffer: {args.write_buffer}\n"
            gateway, port = start_gateway(args.root, routes, SECRETS, Path(workdir))
            before = rss_mib(gateway.pid)
            readers = [_reader(port, args.mib, args.answer) for _ in range(args.readers)]
            started, got, peak = time.monotonic(), [0] * len(readers), before
            while (elapsed := time.monotonic() - started) < args.seconds:
                for index, sock in enumerate(readers):
                    budget = int(args.rate_kib * 1024 * elapsed) - got[index]
                    if budget > 0:
                        with contextlib.suppress(BlockingIOError):
                            got[index] += len(sock.recv(min(budget, 1 << 16)))
                peak = max(peak, rss_mib(gateway.pid))
                time.sleep(0.1)
            received = sum(got)
            during = rss_mib(gateway.pid)
            for sock in readers:
                sock.close()
            time.sleep(3)
            after = rss_mib(gateway.pid)
        finally:
            stop(gateway, mock)
    print(f"gateway {args.root}: {args.readers} readers of a {args.mib} MiB {args.answer} answer "
          f"at {args.rate_kib} KiB/s "
          f"for {args.seconds:.0f} s (write_buffer {args.write_buffer or 'default'})")
    print(f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB, at the end {during:.0f} MiB, "
          f"3 s after they left {after:.0f} MiB; the readers got {received / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
