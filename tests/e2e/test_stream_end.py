"""A stream's last event reaches the client in one write with the answer's end (server/http1.py
write_next_turn): held until the loop's next turn, when the handler writes the end; and what is
written while it is held follows it in order."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CLIENT_TOKEN, Gateway, read_request, write_config

EVENTS = [b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
          b'[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % word
          for word in (b"one", b"two", b"three")]
DONE = b"data: [DONE]\n\n"
ANTHROPIC_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class Canned:
    """An upstream that answers every POST with `pieces`, each a chunk of its own, all in one send:
    the end of the answer comes in the same read as its last event."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        canned = self

        class Answer(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while read_request(self.rfile):
                    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in canned.pieces)
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % chunks)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(canned: Canned, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    routes = f"""version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
  drain_timeout: 5s
secrets: secrets.yaml
providers:
  canned: {{url: {canned.url}/v1, format: openai, api_key: sk-canned-0000000000000000}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - match: ANY /proxy/{{provider}}/{{path*}}
    handler: passthrough
  - {{match: GET /healthz, handler: health}}
"""
    directory: Path = tmp_path_factory.mktemp("stream-end")
    gateway = Gateway(write_config(directory, routes, f"client_token: {CLIENT_TOKEN}\n"))
    yield gateway
    gateway.stop()
    assert "Traceback" not in gateway.log(), gateway.log()


def _reads(gateway: Gateway, path: str) -> list[bytes]:
    """A streamed chat completion over a raw socket: what each recv returned, until the answer's end."""
    body = json.dumps({"model": "canned/m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    reads = []
    with contextlib.closing(socket.create_connection(("127.0.0.1", gateway.port), timeout=10)) as sock:
        sock.sendall(head.encode() + body.encode())
        while not b"".join(reads).endswith(b"\r\n0\r\n\r\n"):
            piece = sock.recv(65536)
            assert piece, b"".join(reads)
            reads.append(piece)
    return reads


def _body(answer: bytes) -> bytes:
    """The chunked body, unframed."""
    rest = answer.split(b"\r\n\r\n", 1)[1]
    out = b""
    while True:
        size, rest = rest.split(b"\r\n", 1)
        if int(size, 16) == 0:
            return out
        out, rest = out + rest[: int(size, 16)], rest[int(size, 16) + 2:]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/proxy/canned/chat/completions"])
@pytest.mark.parametrize("last", [DONE, ANTHROPIC_STOP])
def test_the_last_event_and_the_answers_end_reach_the_client_in_one_write(
    canned: Canned, gateway: Gateway, path: str, last: bytes
) -> None:
    canned.pieces = [*EVENTS, last]
    reads = _reads(gateway, path)
    assert _body(b"".join(reads)) == b"".join(canned.pieces)
    # Written together, read together: never the event in a read and the end in the next.
    assert reads[-1].endswith(last + b"\r\n0\r\n\r\n"), reads


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/proxy/canned/chat/completions"])
def test_a_whole_stream_in_one_read_is_answered_in_one_write(canned: Canned, gateway: Gateway, path: str) -> None:
    canned.pieces = [b"".join(EVENTS) + DONE]
    reads = _reads(gateway, path)
    assert len(reads) == 1 and _body(reads[0]) == canned.pieces[0], reads


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/proxy/canned/chat/completions"])
def test_what_follows_a_last_event_is_relayed_after_it_in_order(canned: Canned, gateway: Gateway, path: str) -> None:
    canned.pieces = [EVENTS[0], DONE, EVENTS[1], ANTHROPIC_STOP, EVENTS[2]]
    assert _body(b"".join(_reads(gateway, path))) == b"".join(canned.pieces)
