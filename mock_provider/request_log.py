"""The record of received requests that ``GET /_mock/requests`` serves: what the gateway
actually sent upstream, for tests to inspect."""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections import deque
from typing import Any

import tornado.httputil

DEFAULT_LOG_LIMIT = 1000
LOG_BODY_LIMIT = 64 * 1024  # larger bodies are logged as sha256 + size only


class RequestLog:
    """Bounded record of received requests, for tests to inspect what the gateway sent."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        self._ids = itertools.count(1)

    def record(
        self, request: tornado.httputil.HTTPServerRequest, request_id: str | None = None
    ) -> dict[str, Any]:
        """Append and return a new entry (mutated later as the response progresses).

        Bodies over LOG_BODY_LIMIT are kept as ``body_sha256`` only, so a test can prove a
        large upload arrived byte-identical without the log holding (or serving) it.
        """
        body = request.body
        address = getattr(getattr(request.connection, "context", None), "address", None)
        entry: dict[str, Any] = {
            "id": next(self._ids),
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "started": time.time(),
            "finished": False,
            "disconnected": False,
            "status": None,
            "body_size": len(body),
            # The client's port: requests that share one tells they came over one connection.
            "peer_port": address[1] if isinstance(address, tuple) and len(address) > 1 else None,
        }
        if request_id is not None:
            entry["request_id"] = request_id
        if len(body) > LOG_BODY_LIMIT:
            entry["body_sha256"] = hashlib.sha256(body).hexdigest()
        else:
            try:
                entry["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                entry["body_b64"] = base64.b64encode(body).decode("ascii")
        self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
