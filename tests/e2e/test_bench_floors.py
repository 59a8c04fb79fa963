"""bench.streams' floor relays (bench/stream_floor.py) still relay what bench.streams checks:
they import the gateway's driver, so a change there must not leave them broken until the next
benchmark run."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import ROOT, free_port

EVENTS = 6


def _start(*args: str) -> subprocess.Popen[bytes]:
    """A bench process, once it says it listens."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if ready else b""
    if b"listening on" not in line:
        proc.kill()
        pytest.fail(f"{args[0]} did not start: {line!r}")
    return proc


@pytest.fixture(scope="module")
def trickler() -> Iterator[int]:
    port = free_port()
    proc = _start("bench.trickle", "--port", str(port), "--events", str(EVENTS), "--rate", "200")
    yield port
    proc.kill()
    proc.wait()


def _stream(sock: socket.socket, port: int) -> bytes:
    """One streamed chat completion over a kept-alive connection: the whole answer."""
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    answer = b""
    while not answer.endswith(b"\r\n0\r\n\r\n"):
        data = sock.recv(65536)
        assert data, f"closed mid-answer: {answer!r}"
        answer += data
    return answer


@pytest.mark.parametrize("kind", ["pipe", "curl"])
def test_a_floor_relays_every_event_and_serves_on(trickler: int, kind: str) -> None:
    port = free_port()
    proc = _start("bench.stream_floor", "--kind", kind, "--port", str(port), "--upstream-port", str(trickler))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for _ in range(2):
                answer = _stream(sock, port)
                assert answer.startswith(b"HTTP/1.1 200") and b"text/event-stream" in answer
                assert answer.count(b"data: ") == EVENTS and b"data: [DONE]\n\n" in answer
    finally:
        proc.kill()
        proc.wait()
