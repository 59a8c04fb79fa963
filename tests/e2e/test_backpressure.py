"""A client that reads slowly holds back the upstream instead of filling the gateway's memory.

Each test asks the mock for a 64 MiB answer through a gateway whose `write_buffer` is
256 KiB, stops reading for a while (long enough for the whole answer to cross loopback
if nothing held it back), checks that the gateway grew by far less than the answer,
then reads the rest and checks every byte.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_provider import filler_text, speech_bytes
from tests.e2e.conftest import standard_gateway
from tests.support import CLIENT_TOKEN, Gateway, Mock

ANSWER_KIB = 64 * 1024
STALL_S = 1.5  # a reader that stops this long; unpaced, 64 MiB crosses loopback well within it
MAX_GROWTH_KIB = 8 * 1024  # the mark plus what the upstream client reads ahead (1 MiB), with room


@pytest.fixture
def paced(mock: Mock, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway per test: memory freed by an earlier test would hide growth in the next."""
    process = standard_gateway(mock, tmp_path, "  write_buffer: 256KiB\n")
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


class SlowReader:
    """A raw-socket client with a small receive buffer that reads only when told to."""

    def __init__(self, port: int, method: str, path: str, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode() + payload
        )
        self.received = bytearray()
        while b"\r\n\r\n" not in self.received:
            self.received += self.sock.recv(4096)

    def rest(self) -> tuple[str, bytes]:
        """Read to the end; the status line and the de-chunked body."""
        while chunk := self.sock.recv(1 << 20):
            self.received += chunk
        self.sock.close()
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower(), head
        return head.split(b"\r\n", 1)[0].decode(), _dechunk(body)


def _dechunk(body: bytes) -> bytes:
    out, at = [], 0
    while True:
        end = body.index(b"\r\n", at)
        size = int(body[at:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2 : end + 2 + size])
        at = end + 4 + size


def _stalled_growth_kib(gateway: Gateway, reader: SlowReader) -> int:
    before = gateway.memory_kib()
    time.sleep(STALL_S)
    grown = gateway.memory_kib() - before
    print(f"gateway RSS grew by {grown / 1024:.1f} MiB while a reader of {ANSWER_KIB >> 10} MiB stalled")
    return grown


def _warm_up(gateway: Gateway, method: str, path: str, body: dict) -> None:
    """Same request with a small answer first, so first-use allocations do not count."""
    SlowReader(gateway.port, method, path, body).rest()


def _chat(kib: int) -> dict:
    return {"model": f"mock/gpt-big-{kib}", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def test_sse_chat_to_a_stalled_reader_is_paced(paced: Gateway) -> None:
    _warm_up(paced, "POST", "/v1/chat/completions", _chat(64))
    reader = SlowReader(paced.port, "POST", "/v1/chat/completions", _chat(ANSWER_KIB))
    grown = _stalled_growth_kib(paced, reader)
    status, body = reader.rest()
    assert status == "HTTP/1.1 200 OK"
    events = body.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == filler_text(ANSWER_KIB * 1024)
    assert grown < MAX_GROWTH_KIB, f"RSS grew by {grown} KiB for a {ANSWER_KIB} KiB answer"


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/proxy/mock/audio/speech"])
def test_plain_body_to_a_stalled_reader_is_paced(paced: Gateway, path: str) -> None:
    """The forward and passthrough handlers relay a 64 MiB audio body the same way."""
    speech = {"model": "tts-1", "input": "slow", "voice": "alloy", "x_mock_bytes": ANSWER_KIB * 1024}
    _warm_up(paced, "POST", path, {**speech, "x_mock_bytes": 1 << 20})
    reader = SlowReader(paced.port, "POST", path, speech)
    grown = _stalled_growth_kib(paced, reader)
    status, body = reader.rest()
    assert status == "HTTP/1.1 200 OK"
    assert body == speech_bytes("slow", "alloy", ANSWER_KIB * 1024)
    assert grown < MAX_GROWTH_KIB, f"RSS grew by {grown} KiB for a {ANSWER_KIB} KiB answer"


def test_a_stalled_reader_that_leaves_cancels_the_held_upstream(paced: Gateway, mock: Mock) -> None:
    mock.clear()
    reader = SlowReader(paced.port, "POST", "/v1/chat/completions", _chat(ANSWER_KIB))
    time.sleep(STALL_S)
    reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reader.sock.close()  # with unread data: a reset, as a client that crashed
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = [e for e in mock.requests() if e["path"] == "/v1/chat/completions"]
        if entries and entries[-1]["disconnected"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the upstream transfer was not cancelled: {entries}")
    assert "gateway_requests_in_flight 1.0" in paced.metrics()  # the scrape itself


def test_streamed_upload_is_still_paced(paced: Gateway, mock: Mock) -> None:
    """`body: stream` keeps its own back-pressure (towards the provider) alongside the answer's."""
    data = bytes(range(256)) * (120 * 1024)  # 30 MiB
    boundary = "----paced-upload"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    before = paced.memory_kib()
    status, _, answer = paced.request("POST", "/v1/audio/transcriptions", body,
                                      {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    assert json.loads(answer)["x_mock"]["file_bytes"] == len(data)
    grown = paced.memory_kib() - before
    assert grown < MAX_GROWTH_KIB, f"RSS grew by {grown} KiB for a 30 MiB upload"


def test_pipelined_requests_of_a_client_that_reads_no_answer_are_not_read_on(paced: Gateway) -> None:
    """A client pipelines 4,000 requests for /metrics (several KiB of answer each, 25 MiB in
    all) and reads nothing for a while: the gateway answers until `write_buffer` is unsent,
    then reads no further request until the client reads, so its memory stays flat. Every
    request is answered in the end."""
    request = b"GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n"
    assert len(paced.metrics()) > 5_000
    before = paced.memory_kib()
    with socket.create_connection(("127.0.0.1", paced.port), timeout=60) as sock:
        sock.sendall(request * 3_999 + b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        time.sleep(STALL_S * 2)
        grown = paced.memory_kib() - before
        print(f"gateway RSS grew by {grown / 1024:.1f} MiB while 4,000 pipelined answers went unread")
        assert grown < MAX_GROWTH_KIB
        received = bytearray()
        while chunk := sock.recv(1 << 20):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 4_000 and received.endswith(b"OK")
