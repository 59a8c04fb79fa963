"""The HTTP layer over raw sockets: credentials checked before the body, keep-alive and
pipelining, HTTP/1.0, hop-by-hop headers, the head's size, header values kept out of the
log, and every refusal in the error shape of the client's route."""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.e2e.conftest import standard_gateway
from tests.support import CLIENT_TOKEN, Gateway, Mock

READER = "tok-protocol-reader-000000001"
LIMITS = """  max_body: 1MiB
  max_buffered_bodies: 2MiB
  max_header_size: 64KiB
  body_timeout: 2s
"""
SECRETS = f"""client_token: {CLIENT_TOKEN}
api_keys:
  reader: {{token: {READER}, roles: [read-only]}}
"""
CHAT = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode()
STREAM = json.dumps({"model": "fast", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def proto(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = standard_gateway(mock, tmp_path_factory.mktemp("protocol"), LIMITS, SECRETS)
    yield gateway
    gateway.stop()
    assert "Traceback" not in gateway.log(), gateway.log()


def connect(gateway: Gateway, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a timeout fails the test (it did not close)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


class Responses:
    """Responses framed by Content-Length (the gateway's own answers) read one by one from a
    socket that stays open; pipelined answers may arrive in one segment."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed inside a response: {self.buffer!r}"
        self.buffer += chunk

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status, headers, _ = split_response(head)
        length = int(headers["content-length"])
        while len(rest) < length:
            self._more()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return status, headers, rest[:length]

    def rest(self) -> bytes:
        return self.buffer + until_closed(self.sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response, when no other may follow it unasked."""
    responses = Responses(sock)
    answer = responses.next()
    assert not responses.buffer, "more bytes than one response"
    return answer


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    return (int(lines[0].split(" ")[1]),
            {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}, body)


def head(method: str, path: str, *extra: str, token: str | None = CLIENT_TOKEN, version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: x", *extra]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chat(body: bytes = CHAT, *extra: str, version: str = "1.1") -> bytes:
    return head("POST", "/v1/chat/completions", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *extra, version=version) + body


def anthropic_error(body: bytes, kind: str) -> str:
    document = json.loads(body)
    assert document["type"] == "error" and document["error"]["type"] == kind, document
    assert set(document) == {"type", "error"} and isinstance(document["error"]["message"], str)
    return document["error"]["message"]


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- credentials before the body (issue 8, defect 2) ---------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/audio/transcriptions"])
def test_no_token_is_refused_before_the_body_is_sent(proto: Gateway, path: str) -> None:
    with connect(proto) as sock:  # the body is announced, never sent: the answer cannot wait for it
        sock.sendall(head("POST", path, "Content-Length: 1000000", token=None))
        status, headers, body = split_response(until_closed(sock))
    assert status == 401 and headers["connection"] == "close" and headers["x-request-id"]
    if path == "/v1/messages":
        anthropic_error(body, "authentication_error")
    else:
        assert json.loads(body)["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (head("HEAD", "/proxy/mock/models", token=None), 401),
        (head("HEAD", "/proxy/mock/models", f"X-Big: {'a' * 70_000}"), 431),
    ],
    ids=["401", "431"],
)
def test_refusals_of_head_requests_carry_no_body(proto: Gateway, request_bytes: bytes, status: int) -> None:
    with connect(proto) as sock:
        sock.sendall(request_bytes)
        got, headers, body = split_response(until_closed(sock))
    assert got == status and int(headers["content-length"]) > 0 and body == b""
    assert "Traceback" not in proto.log()


def test_expect_100_continue_without_a_token_gets_no_continue(proto: Gateway) -> None:
    with connect(proto) as sock:
        sock.sendall(head("POST", "/v1/chat/completions", "Content-Length: 1000000", "Expect: 100-continue",
                          token="not-a-key"))
        raw = until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 401 ") and b" 100 " not in raw, raw


def test_a_key_not_allowed_the_route_is_refused_before_the_body(proto: Gateway) -> None:
    with connect(proto) as sock:  # read-only key, POST: 403 from the headers alone
        sock.sendall(head("POST", "/v1/messages", "Content-Length: 1000000", "Expect: 100-continue",
                          token=READER))
        raw = until_closed(sock)
    status, _, body = split_response(raw)
    assert status == 403 and b" 100 " not in raw
    assert "read" in anthropic_error(body, "permission_error")


def test_expect_100_continue_with_a_token_continues(proto: Gateway) -> None:
    with connect(proto) as sock:
        sock.sendall(head("POST", "/v1/chat/completions", "Content-Type: application/json",
                          f"Content-Length: {len(CHAT)}", "Expect: 100-continue"))
        interim = sock.recv(64)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(CHAT)
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["choices"], body


def test_refusals_at_header_time_are_counted_and_logged(proto: Gateway) -> None:
    denied = 'gateway_auth_denied_total{reason="missing"}'
    answered = 'gateway_requests_total{model="",route="POST /v1/embeddings",status="401"}'
    before = metric(proto.metrics(), denied), metric(proto.metrics(), answered)
    with connect(proto) as sock:
        sock.sendall(head("POST", "/v1/embeddings", "Content-Length: 10", "x-request-id: refused-early-1",
                          token=None))
        until_closed(sock)
    after = metric(proto.metrics(), denied), metric(proto.metrics(), answered)
    assert after == (before[0] + 1, before[1] + 1)
    time.sleep(0.1)
    lines = [json.loads(line) for line in proto.log().splitlines() if '"refused-early-1"' in line]
    assert len(lines) == 1 and lines[0]["status"] == 401 and lines[0]["key"] is None


def test_anonymous_bodies_leave_memory_flat(gateway: Gateway) -> None:
    """8 connections without a token each send 4 MiB of a 30 MiB body (max_body: 32 MiB)."""
    piece = b"x" * (4 << 20)
    before = gateway.memory_kib()
    sockets = []
    try:
        for _ in range(8):
            sock = connect(gateway)
            sockets.append(sock)
            sock.sendall(head("POST", "/v1/chat/completions", f"Content-Length: {30 << 20}", token=None))
            with contextlib.suppress(OSError):  # refused and closed: what should happen
                sock.sendall(piece)
        time.sleep(0.3)
        grown = (gateway.memory_kib() - before) / 1024
    finally:
        for sock in sockets:
            sock.close()
    assert grown < 12, f"RSS grew by {grown:.0f} MiB for bodies nobody may send"


def test_bodies_in_flight_are_bounded(proto: Gateway) -> None:
    """max_buffered_bodies 2 MiB: two bodies of 1 MiB being received, the third gets 503."""
    held = []
    try:
        for _ in range(2):
            sock = connect(proto)
            held.append(sock)
            sock.sendall(head("POST", "/v1/chat/completions", "Content-Length: 1000000", "Expect: 100-continue"))
            assert sock.recv(64).startswith(b"HTTP/1.1 100 ")  # its megabyte is reserved
            sock.sendall(b"{")
        with connect(proto) as sock:
            sock.sendall(head("POST", "/v1/chat/completions", "Content-Length: 100000"))
            status, headers, body = split_response(until_closed(sock))
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "too_many_bodies"
        with connect(proto) as sock:
            sock.sendall(head("POST", "/v1/messages", "Content-Length: 100000"))
            status, _, body = split_response(until_closed(sock))
        assert status == 503
        anthropic_error(body, "overloaded_error")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert proto.request("POST", "/v1/chat/completions", CHAT)[0] == 200, "the budget is given back"


# -- keep-alive (defect 4) ---------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(proto: Gateway) -> None:
    with connect(proto) as sock:
        for _ in range(3):
            sock.sendall(chat())
            status, headers, body = read_response(sock)
            assert status == 200 and "connection" not in headers and json.loads(body)["choices"]
            assert "server" not in headers  # no product and version advertised


def test_a_length_given_twice_alike_frames_the_body(proto: Gateway) -> None:
    """Content-Length repeated with one value (as a list, or on two lines) is that length: the
    body is read to it and the connection serves on."""
    size = len(CHAT)
    with connect(proto) as sock:
        for lengths in ([f"Content-Length: {size}, {size}"], [f"Content-Length: {size}"] * 2):
            sock.sendall(head("POST", "/v1/chat/completions", "Content-Type: application/json", *lengths) + CHAT)
            status, headers, body = read_response(sock)
            assert status == 200 and json.loads(body)["choices"]


def test_answer_headers_of_a_fresh_request(proto: Gateway) -> None:
    """Each answer's own request id (a random UUID, version 4, in hex), the current date in
    HTTP's format, and no Server header, however the handler built them."""
    seen = set()
    with connect(proto) as sock:
        for _ in range(3):
            sock.sendall(chat())
            before = time.time()
            status, headers, _ = read_response(sock)
            given = uuid.UUID(hex=headers["x-request-id"])
            assert status == 200 and given.hex == headers["x-request-id"]
            assert given.version == 4 and given.variant == uuid.RFC_4122
            seen.add(given)
            date = email.utils.parsedate_to_datetime(headers["date"])
            assert headers["date"].endswith(" GMT") and abs(date.timestamp() - before) < 5
            assert "server" not in headers
    assert len(seen) == 3


def test_pipelined_requests_are_all_answered(proto: Gateway) -> None:
    with connect(proto) as sock:
        sock.sendall(chat() + head("GET", "/healthz") + chat(STREAM, "Connection: close"))
        responses = Responses(sock)
        assert responses.next()[0] == 200
        assert responses.next()[2] == b"OK"
        rest = responses.rest()
    assert rest.startswith(b"HTTP/1.1 200 ") and b"data: [DONE]" in rest


def read_chunked(sock: socket.socket) -> tuple[int, dict[str, str], list[bytes]]:
    """One chunked response, strictly framed: its chunks, and nothing read past its last chunk."""
    buffer = b""

    def more() -> None:
        nonlocal buffer
        data = sock.recv(65536)
        assert data, f"closed inside a response: {buffer!r}"
        buffer += data

    while b"\r\n\r\n" not in buffer:
        more()
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    status, headers, _ = split_response(head + b"\r\n\r\n")
    assert headers["transfer-encoding"] == "chunked"
    chunks = []
    while True:
        while b"\r\n" not in buffer:
            more()
        size_line, _, buffer = buffer.partition(b"\r\n")
        size = int(size_line, 16)
        while len(buffer) < size + 2:
            more()
        assert buffer[size : size + 2] == b"\r\n", buffer[: size + 2]
        if not size:
            assert buffer == b"\r\n", f"bytes after the last chunk: {buffer!r}"
            return status, headers, chunks
        chunks.append(buffer[:size])
        buffer = buffer[size + 2 :]


def test_streams_are_chunked_exactly_and_the_connection_serves_on(proto: Gateway) -> None:
    """Events relayed one upstream read at a time (framed by server/http1.Exchange.relay) are
    framed as HTTP/1.1 chunks, end with the last chunk, and leave the kept-alive connection ready
    for the next request."""
    streamed = json.dumps({"model": "mock/gpt-delay-20", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    with connect(proto) as sock:
        for _ in range(2):
            sock.sendall(chat(streamed))
            status, headers, chunks = read_chunked(sock)
            assert status == 200 and headers["content-type"].startswith("text/event-stream")
            assert len(chunks) > 2 and all(chunk.endswith(b"\n\n") for chunk in chunks)
            events = b"".join(chunks).split(b"\n\n")
            assert events[-2:] == [b"data: [DONE]", b""]
            assert all(event.startswith(b"data: {") for event in events[:-2])
            sock.sendall(chat())
            status, _, body = read_response(sock)
            assert status == 200 and json.loads(body)["choices"]


# Streams of every kind the steady path relays: native, tool calls, thinking, many small events (a
# piece each), a start of single characters, converted either way, and through the passthrough.
STEADY_STREAMS = [
    ("/v1/chat/completions", "mock/gpt-delay-5"),
    ("/v1/chat/completions", "mock/gpt-tools-delay-5"),
    ("/v1/chat/completions", "mock/gpt-thinking-cache"),
    ("/v1/chat/completions", "mock/gpt-big-24-piece-1"),
    ("/v1/chat/completions", "mock/gpt-big-6-piece-1-leadbytes"),
    ("/v1/chat/completions", "claude/claude-delay-5"),
    ("/v1/chat/completions", "claude/claude-tools-big-4-piece-1"),
    ("/v1/messages", "mock/gpt-delay-5"),
    ("/v1/messages", "claude/claude-delay-5"),
    ("/v1/messages", "claude/claude-thinking-big-4-piece-1"),
    ("/proxy/mock/chat/completions", "gpt-big-4-piece-1"),
]


@pytest.mark.parametrize(("path", "model"), STEADY_STREAMS)
def test_a_stream_reads_alike_chunked_and_unframed(proto: Gateway, path: str, model: str) -> None:
    """A stream's later events go to an HTTP/1.1 client's chunked answer in one steady call each
    (GatewayHandler.deliver_steadily, straight to the socket), to an HTTP/1.0 client's unframed one
    through the attempt's steps, `send` and `relay` (upstream/attempt.py steady_deliver): the
    client reads the same bytes either way."""
    body = json.dumps({"model": model, "stream": True, "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Tell me a story"}]}).encode()
    request = head("POST", path, "Content-Type: application/json", "anthropic-version: 2023-06-01",
                   f"Content-Length: {len(body)}", version="{}") + body
    with connect(proto) as sock:
        sock.sendall(request.replace(b"HTTP/{}", b"HTTP/1.1"))
        status, _, chunks = read_chunked(sock)
    with connect(proto) as sock:
        sock.sendall(request.replace(b"HTTP/{}", b"HTTP/1.0"))
        unframed_status, headers, unframed = split_response(until_closed(sock))
    assert status == unframed_status == 200 and "transfer-encoding" not in headers
    # The mock numbers its answers' ids; a converted chunk's `created` is the second its stream began.
    varying = re.compile(rb'mock\d+|"created":\d+')
    assert len(chunks) > 3 and varying.sub(b"#", b"".join(chunks)) == varying.sub(b"#", unframed)


def test_http_1_0_closes_unless_asked_to_keep_alive(proto: Gateway) -> None:
    with connect(proto) as sock:
        sock.sendall(head("GET", "/healthz", version="1.0"))
        status, headers, body = split_response(until_closed(sock))
    assert status == 200 and body == b"OK"
    with connect(proto) as sock:
        for _ in range(2):
            sock.sendall(chat(CHAT, "Connection: keep-alive", version="1.0"))
            status, headers, _ = read_response(sock)
            assert status == 200 and headers["connection"].lower() == "keep-alive"
        # a stream has no length and HTTP/1.0 no chunks: it ends with the connection, said so
        sock.sendall(chat(STREAM, "Connection: keep-alive", version="1.0"))
        raw = until_closed(sock)
    status, headers, body = split_response(raw)
    assert status == 200 and "connection" not in headers and body.rstrip().endswith(b"data: [DONE]")


def test_draining_ends_kept_alive_connections_with_their_next_answer(fresh_gateway: Gateway) -> None:
    with connect(fresh_gateway) as sock:
        sock.sendall(chat())
        assert "connection" not in read_response(sock)[1]
        stream = fresh_gateway.openai().chat.completions.create(
            model="mock/gpt-delay-100", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = iter(stream)
        next(chunks)  # in flight: the drain waits for it
        fresh_gateway.signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "gateway: draining" not in fresh_gateway.log() and time.monotonic() < deadline:  # not the path
            time.sleep(0.05)
        sock.sendall(chat())
        status, headers, _ = split_response(until_closed(sock))
        assert status == 200 and headers.get("connection") == "close"
        assert list(chunks)
    assert fresh_gateway.proc.wait(10) == 0


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (head("POST", "/v1/chat/completions", f"Content-Length: {2 << 20}"), 413),
        # a length given twice is the length: refused at the head, not timed out waiting for the body
        (head("POST", "/v1/chat/completions", f"Content-Length: {2 << 20}, {2 << 20}"), 413),
        (head("POST", "/v1/chat/completions", f"Content-Length: {2 << 20}", f"Content-Length: {2 << 20}"), 413),
        (head("POST", "/v1/chat/completions", f"X-Big: {'a' * 70_000}", "Content-Length: 2") + b"{}", 431),
        (head("POST", "/v1/chat/completions", "Content-Length: 20") + b"{", 408),
    ],
    ids=["413", "413-listed-twice", "413-two-lines", "431", "408"],
)
def test_limit_refusals_close_a_kept_alive_connection(proto: Gateway, request_bytes: bytes, status: int) -> None:
    with connect(proto) as sock:
        sock.sendall(chat())
        assert read_response(sock)[0] == 200
        sock.sendall(request_bytes)
        got, headers, _ = split_response(until_closed(sock))
    assert got == status and headers["connection"] == "close"


# -- the request line counts toward max_header_size -------------------------------------------


def test_the_request_line_counts_toward_the_header_limit(proto: Gateway) -> None:
    with connect(proto) as sock:  # 40 KB of query and 30 KB of header: 64 KiB passed together
        sock.sendall(head("GET", f"/healthz?pad={'q' * 40_000}", f"X-Pad: {'h' * 30_000}"))
        status, headers, body = split_response(until_closed(sock))
    assert status == 431 and "request line and headers" in json.loads(body)["error"]["message"]
    with connect(proto) as sock:
        sock.sendall(head("POST", f"/v1/messages?pad={'q' * 70_000}", "Content-Length: 2") + b"{}")
        status, headers, body = split_response(until_closed(sock))
    assert status == 414
    anthropic_error(body, "invalid_request_error")
    assert proto.get("/healthz")[0] == 200


# -- header values never logged (defect 5) -----------------------------------------------------


@pytest.mark.parametrize("stray", ["\x7f", "\x00", "\r"], ids=["del", "nul", "cr"])
def test_a_malformed_header_value_is_a_400_and_never_logged(proto: Gateway, stray: str) -> None:
    canary = f"canary-token-{ord(stray):02x}-5e1d9b7a"
    with connect(proto) as sock:
        sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {canary}{stray}\r\n\r\n".encode())
        raw = until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 400 ")
    status, headers, body = split_response(raw)
    assert headers["connection"] == "close" and json.loads(body)["error"]["code"] == "malformed_request"
    time.sleep(0.1)
    log = proto.log()
    assert "Malformed HTTP message" in log and canary not in log


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded: value\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX",
], ids=["no-host", "two-hosts", "http2", "garbage", "folded", "length-and-chunked", "gzip", "length-1e3",
        "unequal-lengths", "bad-chunk-size", "bad-chunk-end"])
def test_unreadable_requests_get_a_400_in_openai_shape_and_a_close(proto: Gateway, request_bytes: bytes) -> None:
    with connect(proto) as sock:
        token = f"Host: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n".encode()
        sock.sendall(request_bytes.replace(b"Host: x\r\n", token))
        status, headers, body = split_response(until_closed(sock))
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "malformed_request"
    assert proto.get("/healthz")[0] == 200


def test_a_head_past_two_mebibytes_without_its_end_is_431(proto: Gateway) -> None:
    with connect(proto, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(33):  # just past 2 MiB, then silence: all of it is read before the close
            sock.sendall(b"X-Pad: " + b"p" * 65_000 + b"\r\n")
        status, _, body = split_response(until_closed(sock))
    assert status == 431 and json.loads(body)["error"]["code"] == "headers_too_large"
    assert proto.get("/healthz")[0] == 200


# -- Connection-named headers are this hop's only (defect 16) --------------------------------


@pytest.mark.parametrize("path", ["/v1/embeddings", "/proxy/mock/embeddings"])
def test_headers_named_in_connection_are_not_relayed(proto: Gateway, mock: Mock, path: str) -> None:
    body = json.dumps({"model": "text-embedding-3-small", "input": "x"}).encode()
    status, headers, _ = proto.request("POST", path, body, {
        "Connection": "keep-alive, X-Hop-Secret", "X-Hop-Secret": "for-the-gateway", "X-Kept": "yes",
        "x-mock-hop-header": "X-Upstream-Hop",
    })
    assert status == 200
    received = [r for r in mock.requests() if r["path"] == "/v1/embeddings"][-1]["headers"]
    assert received.get("x-kept") == "yes" and "x-hop-secret" not in received
    assert "x-upstream-hop" not in headers


# -- every refusal in the route's error shape (defects 15, 21) -------------------------------


def test_wrong_method_on_an_anthropic_route_is_an_anthropic_405(proto: Gateway) -> None:
    status, headers, body = proto.get("/v1/messages")
    assert status == 405 and headers["allow"] == "POST"
    assert "not allowed" in anthropic_error(body, "invalid_request_error")
    status, _, body = proto.get("/v1/chat/completions")
    assert status == 405 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_unknown_paths_of_anthropic_clients_are_anthropic_404s(proto: Gateway) -> None:
    client = anthropic.Anthropic(base_url=proto.url, api_key=CLIENT_TOKEN, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as under_messages:
        client.messages.batches.list()  # GET /v1/messages/batches: not served here
    assert under_messages.value.body["type"] == "error"
    assert under_messages.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError) as elsewhere:
        client.post("/v1/complete", body={"model": "fast", "prompt": "hi"}, cast_to=object)
    assert elsewhere.value.body["error"]["type"] == "not_found_error"  # it sent anthropic-version
    status, _, body = proto.get("/v1/nothing-here")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_connections_past_the_cap_get_503_in_their_route_shape(mock: Mock, tmp_path: Path) -> None:
    gateway = standard_gateway(mock, tmp_path, "  max_connections: 2\n", SECRETS)
    try:
        idle: list[socket.socket] = []
        try:
            while len(idle) < 2:  # two kept-alive connections fill the cap (once the readiness probe's is gone)
                sock = connect(gateway)
                sock.sendall(head("GET", "/healthz"))
                if b" 200 " in sock.recv(200):
                    idle.append(sock)
                else:
                    sock.close()
                    time.sleep(0.05)
            with connect(gateway) as sock:
                sock.sendall(head("POST", "/v1/messages", "Content-Length: 2") + b"{}")
                status, headers, body = split_response(until_closed(sock))
            assert status == 503 and headers["retry-after"] == "1"
            anthropic_error(body, "overloaded_error")
            with connect(gateway) as sock:
                sock.sendall(chat())
                status, _, body = split_response(until_closed(sock))
            assert status == 503 and json.loads(body)["error"]["code"] == "too_many_connections"
            connect(gateway).close()  # gone before it said anything
            with connect(gateway) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the rest never comes
                assert split_response(until_closed(sock))[0] == 503
            time.sleep(0.1)
            assert "Traceback" not in gateway.log(), gateway.log()
        finally:
            for sock in idle:
                sock.close()
    finally:
        gateway.stop()


@pytest.mark.parametrize("method", ["FINISH", "GET_STATUS", "ON_CONNECTION_CLOSE", "BREW"])
def test_a_method_no_handler_serves_is_a_405_on_an_any_method_route(proto: Gateway, method: str) -> None:
    """ANY /proxy/... takes whatever method the client names; a method that is not HTTP's names
    no handler method (never one of the handler's own, `finish` say): 405 in OpenAI's shape."""
    with connect(proto) as sock:
        sock.sendall(head(method, "/proxy/mock/v1/models"))
        status, headers, body = read_response(sock)
    assert status == 405 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["message"] == "Method Not Allowed"
