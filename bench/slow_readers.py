"""Gateway memory with slow readers of a large answer.

    python -m bench.slow_readers [--readers 4] [--mib 200] [--rate-kib 10] [--seconds 20]
                                 [--answer chat|speech|proxy] [--root DIR] [--write-buffer 1MiB]

Starts a gateway (from this checkout, or the one at --root, to compare against
another version) and its upstream, then opens --readers raw-socket clients that
each ask for a --mib MiB answer and read it at --rate-kib KiB/s (0: not at all)
for --seconds (0: until every reader has its whole answer). The answer is:

  chat    an SSE chat stream through the chat handler (the mock provider's
          `big-<KiB>` model; the mock caps it at 512 MiB)
  speech  a plain audio body through a forward route (POST /v1/audio/speech)
  proxy   the same body through the passthrough route (/proxy/canned/audio/speech)

speech and proxy come from the canned provider (nginx, bench/canned.conf.template)
serving a sparse file of --mib MiB: any size, at once, no disk used. Prints the
gateway's RSS before, at its peak, at the end of that time and after the readers
have left, and the growth (peak - before). Issue 14's bound, a 1 GiB answer read
at 1 MiB/s:

    python -m bench.slow_readers --answer proxy --readers 1 --mib 1024 --rate-kib 1024 --seconds 0
    python -m bench.slow_readers --answer speech --readers 1 --mib 1024 --rate-kib 1024 --seconds 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path

from bench.processes import ROOT, free_port, rss_mib, start_gateway, start_mock, stop
from bench.run import Processes, find_nginx, start_canned, wait_ready

TOKEN = "bench-slow-readers-token"
SECRETS = f"client_token: {TOKEN}\n"
UNUSED_URL = "http://127.0.0.1:9"  # the provider a run does not start (the mock, or nginx)

ROUTES = """version: 1
secrets: secrets.yaml
providers:
  mock: {url: %(mock)s/v1}
  canned: {url: %(canned)s/v1, timeout: 7200s}  # a 1 GiB answer at 1 MiB/s, with room
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/audio/speech, handler: forward, providers: [canned]}
  - {match: "ANY /proxy/{provider}/{path*}", handler: passthrough}
  - {match: GET /healthz, handler: health}
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  access_log: false
"""
END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked answer


class Reader:
    """One client asking for the answer, then reading it no faster than it is told."""

    def __init__(self, port: int, mib: int, answer: str) -> None:
        if answer == "chat":
            path = "/v1/chat/completions"
            document = {"model": f"mock/gpt-big-{mib * 1024}", "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}
        else:
            path = "/v1/audio/speech" if answer == "speech" else "/proxy/canned/audio/speech"
            document = {"model": "tts-1", "input": "slow", "voice": "alloy"}
        body = json.dumps(document).encode()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                          .encode() + body)
        self.sock.setblocking(False)
        self.got = 0  # bytes received, head included
        self.head = b""
        self.in_head = True
        self.body_length: int | None = None  # from Content-Length; None: chunked
        self.body_got = 0
        self.tail = b""
        self.done = False  # the whole answer is in, or the connection was closed
        self.complete = False  # the whole answer is in

    def read(self, budget: int) -> int:
        """Receive at most `budget` bytes (what has arrived of them); returns how many."""
        taken = 0
        while taken < budget and not self.done:
            try:
                data = self.sock.recv(min(budget - taken, 1 << 16))
            except BlockingIOError:
                break
            if not data:
                self.done = True
                break
            taken += len(data)
            self.take(data)
        self.got += taken
        return taken

    def take(self, data: bytes) -> None:
        if self.in_head:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.in_head = False
            self.head, _, data = self.head.partition(b"\r\n\r\n")
            for line in self.head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.body_length = int(value)
        self.body_got += len(data)
        self.tail = (self.tail + data)[-len(END):]
        if self.body_length is not None:
            self.complete = self.body_got >= self.body_length
        else:
            self.complete = self.tail == END
        self.done = self.complete


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--mib", type=int, default=200, help="size of each answer (MiB)")
    parser.add_argument("--rate-kib", type=float, default=10, help="each reader's pace (KiB/s); 0: none")
    parser.add_argument("--seconds", type=float, default=20,
                        help="how long the readers stay; 0: until each has its whole answer")
    parser.add_argument("--answer", choices=("chat", "speech", "proxy"), default="chat")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose gateway.py to run")
    parser.add_argument("--write-buffer", help="server.write_buffer to configure (default: none set)")
    args = parser.parse_args()
    if args.seconds <= 0 and args.rate_kib <= 0:
        parser.error("--seconds 0 (until the end) needs a --rate-kib above 0")
    mock = gateway = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-slow-readers-"))
    procs = Processes(tmp)
    try:
        urls = {"mock": UNUSED_URL, "canned": UNUSED_URL}
        if args.answer == "chat":
            mock, urls["mock"] = start_mock()
        else:
            nginx = find_nginx()
            if not nginx:
                raise SystemExit("nginx is missing: apt-get install -y nginx")
            port = free_port()
            start_canned(procs, tmp, nginx, port, None, big_bytes=args.mib << 20)
            urls["canned"] = f"http://127.0.0.1:{port}"
            wait_ready(procs, "canned", f"{urls['canned']}/_canned/health", b"OK", 10)
        routes = ROUTES % urls
        if args.write_buffer:
            routes += f"  write_buffer: {args.write_buffer}\n"
        gateway, port = start_gateway(args.root, routes, SECRETS, tmp)
        before = rss_mib(gateway.pid)
        readers = [Reader(port, args.mib, args.answer) for _ in range(args.readers)]
        started, peak = time.monotonic(), before
        while True:
            elapsed = time.monotonic() - started
            if (args.seconds > 0 and elapsed >= args.seconds) or all(r.done for r in readers):
                break
            for reader in readers:
                reader.read(int(args.rate_kib * 1024 * elapsed) - reader.got)
            peak = max(peak, rss_mib(gateway.pid))
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        received = sum(r.got for r in readers)
        complete = sum(r.complete for r in readers)
        cut = sum(r.done and not r.complete for r in readers)
        during = rss_mib(gateway.pid)
        for reader in readers:
            reader.sock.close()
        time.sleep(3)
        after = rss_mib(gateway.pid)
    finally:
        stop(gateway, mock)
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"gateway {args.root}: {args.readers} readers of a {args.mib} MiB {args.answer} answer "
          f"at {args.rate_kib:g} KiB/s for {elapsed:.0f} s (write_buffer {args.write_buffer or 'default'})")
    print(f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB, at the end {during:.1f} MiB, "
          f"3 s after they left {after:.1f} MiB; growth (peak - before) {peak - before:.1f} MiB; "
          f"the readers got {received / 1048576:.1f} MiB, {complete} of {args.readers} "
          f"their whole answer" + (f"; {cut} cut short (the gateway closed the connection)" if cut else ""))


if __name__ == "__main__":
    main()
