"""Shared by the mock provider's tests: the mock process with raw HTTP beside the SDKs, the
requests most tests send, and parsers for what the SDKs hide (SSE framing, chunk sizes)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from tests import support

MSGS = [{"role": "user", "content": "hi there"}]
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}},
]
ANTHROPIC_TOOLS = [
    {"name": "lookup", "input_schema": {"type": "object"}},
    {"name": "clock", "input_schema": {"type": "object"}},
]
COOKIE = "mock_session=1; Path=/"


class Mock(support.Mock):
    """The shared mock process, plus raw HTTP for what the SDKs hide."""

    def raw(
        self, path: str, body: bytes | dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        return self.call("POST" if body is not None else "GET", path, body, headers)

    def call(
        self, method: str, path: str, body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        content = resp.read()
        conn.close()
        return resp, content


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each SSE block in a whole stream body."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data))
    return events


def multipart(fields: dict[str, str], filename: str, content: bytes,
               boundary: str = "mockBoundary7MA4YWxkTrZu0gW") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand (so the test controls every byte)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def chunked_post(port: int, path: str, body: dict[str, Any]) -> tuple[str, list[int], bytes]:
    """POST over a bare socket; return the head, the chunk sizes and the de-chunked body."""
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + data)
        while chunk := sock.recv(1 << 20):
            buf += chunk
    resp_head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    sizes: list[int] = []
    out = bytearray()
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        sizes.append(n)
        out += rest[:n]
        rest = rest[n + 2:]
    return resp_head.decode(), sizes, bytes(out)
