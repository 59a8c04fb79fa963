"""Whatever clients send: each bad input gets its status and error shape, and the gateway still serves."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import standard_gateway
from tests.support import CLIENT_TOKEN, Gateway, Mock

LIMITS = """  max_body: 1MiB
  max_header_size: 64KiB
  body_timeout: 1s
  idle_timeout: 1s
"""
GOOD = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "still here?"}]}).encode()


@pytest.fixture(scope="module")
def limited(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = standard_gateway(mock, tmp_path_factory.mktemp("limits"), LIMITS)
    yield gateway
    gateway.stop()
    assert "Traceback" not in gateway.log(), gateway.log()


def still_serves(gateway: Gateway) -> None:
    status, _, body = gateway.request("POST", "/v1/chat/completions", GOOD)
    assert status == 200, body


def raw_exchange(gateway: Gateway, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return received


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def post_head(path: str, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n"
            f"Content-Type: application/json\r\n{extra}").encode()


DEEP = b'{"model": "fast", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"model": "fast", "messages": [', 400, "not valid JSON"),
        (b'"just a string"', 400, "JSON object"),
        (b'{"model": "fast", "messages": "hello"}', 400, "'messages' must be a non-empty list"),
        (b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "'stream'"),
        (b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}', 400, "'max_tokens'"),
        (b'{"model": "fast", "messages": ["x"]}', 400, "must be an object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "'model' is required"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}', 404, "no-such-model"),
        (b'{"model": "fast", "messages": []}', 400, "non-empty list"),
        (b'{"model": "fast", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "not valid JSON"),
        (DEEP, 400, "not valid JSON"),
    ],
    ids=["malformed", "not-object", "messages-string", "stream-string", "max-tokens-string",
         "message-not-object", "missing-model", "unknown-model", "empty-messages", "invalid-utf8", "deep-nesting"],
)
def test_bad_bodies(limited: Gateway, body: bytes, status: int, fragment: str) -> None:
    got, _, answer = limited.request("POST", "/v1/chat/completions", body)
    assert got == status, answer
    error = json.loads(answer)["error"]
    assert fragment in error["message"] and error["type"]
    still_serves(limited)


def test_bad_bodies_on_messages_get_anthropic_shape(limited: Gateway) -> None:
    got, _, answer = limited.request("POST", "/v1/messages", b"{nope")
    assert got == 400 and json.loads(answer)["type"] == "error"
    still_serves(limited)


def test_a_gigabyte_announced_is_refused_before_it_is_read(limited: Gateway) -> None:
    started = time.monotonic()
    raw = raw_exchange(limited, post_head("/v1/chat/completions", "Content-Length: 1073741824\r\n\r\n") + b"{")
    status, error = status_and_json(raw)
    assert status == 413 and error["error"]["type"] == "invalid_request_error"
    assert time.monotonic() - started < 5, "answered without waiting for the body"
    still_serves(limited)


def test_a_chunked_body_past_max_body_is_413(limited: Gateway) -> None:
    chunk = b"x" * 65536
    payload = post_head("/v1/chat/completions", "Transfer-Encoding: chunked\r\n\r\n")
    payload += (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 20 + b"0\r\n\r\n"
    status, _ = status_and_json(raw_exchange(limited, payload))
    assert status == 413
    still_serves(limited)


def test_a_chunked_body_that_never_ends_times_out_with_408(limited: Gateway) -> None:
    payload = post_head("/v1/chat/completions", "Transfer-Encoding: chunked\r\n\r\n") + b"5\r\n{\"mod\r\n"
    status, error = status_and_json(raw_exchange(limited, payload))
    assert status == 408 and "not received within" in error["error"]["message"]
    still_serves(limited)


def test_a_megabyte_header_is_431(limited: Gateway) -> None:
    payload = post_head("/v1/chat/completions", f"X-Big: {'a' * (1024 * 1024)}\r\nContent-Length: 2\r\n\r\n") + b"{}"
    status, error = status_and_json(raw_exchange(limited, payload))
    assert status == 431 and "headers exceed" in error["error"]["message"]
    still_serves(limited)


def test_slow_loris_is_cut_off_and_others_are_served(limited: Gateway) -> None:
    head = post_head("/v1/chat/completions", "Content-Length: 2\r\n")
    with socket.create_connection(("127.0.0.1", limited.port), timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(head[:1])
        still_serves(limited)  # others are served while it dawdles
        for byte in head[1:40]:
            time.sleep(0.2)
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b"", "the server must close a connection whose headers never finish"
        assert time.monotonic() - started < 10
    still_serves(limited)


def test_client_disconnecting_mid_upload(limited: Gateway) -> None:
    for path in ("/v1/chat/completions", "/v1/audio/transcriptions"):
        with socket.create_connection(("127.0.0.1", limited.port)) as sock:
            sock.sendall(post_head(path, "Content-Length: 500000\r\n\r\n") + b"x" * 100_000)
    time.sleep(0.2)
    still_serves(limited)
    assert "Traceback" not in limited.log()


def test_connections_past_the_cap_get_503(mock: Mock, tmp_path: Path) -> None:
    gateway = standard_gateway(mock, tmp_path, "  max_connections: 4\n")
    try:
        idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(4)]
        try:
            deadline = time.monotonic() + 5
            while True:  # until the server has accepted all four
                raw = raw_exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 503 " in raw.split(b"\r\n", 1)[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            status, error = status_and_json(raw)
            assert status == 503 and error["error"]["code"] == "too_many_connections"
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.2)
        still_serves(gateway)
        assert 'gateway_requests_refused_total{reason="too_many_connections"}' in gateway.metrics()
    finally:
        gateway.stop()


# -- the HTTP/1.1 reader (server/http1.py) ----------------------------------------------------


def test_a_head_that_never_ends_is_closed_after_idle_timeout(limited: Gateway) -> None:
    """A client that starts a request and never finishes its head (slowloris) is let go once
    server.idle_timeout (1s here) has passed since the connection began waiting for it."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(3):  # a byte now and then does not keep it open
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                sock.sendall(b"X")
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 8
    still_serves(limited)


def test_a_kept_alive_connection_with_no_next_request_is_closed_after_idle_timeout(limited: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in answer.lower()
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.5 < time.monotonic() - started < 8


def test_a_chunked_upload_split_anywhere_is_read_whole(limited: Gateway) -> None:
    """Chunk sizes, data and CRLFs arriving in pieces of any size (here 3 bytes at a time) make
    the same request as one Content-Length body would."""
    pieces = [GOOD[i : i + 7] for i in range(0, len(GOOD), 7)]
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    payload = post_head("/v1/chat/completions", "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n") + body
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        for i in range(0, len(payload), 3):
            sock.sendall(payload[i : i + 3])
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status, answer = status_and_json(received)
    assert status == 200 and answer["choices"][0]["message"]["content"]
