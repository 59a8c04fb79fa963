"""The base of every ``/v1`` endpoint: records the request, tracks disconnects, and answers
errors in the endpoint's own format (OpenAI or Anthropic), as a real provider would."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import tornado.httputil
import tornado.web

from mock_provider.state import MockState
from mock_provider.wire.chat_completions import openai_error
from mock_provider.wire.messages import anthropic_error

# Uploads (audio, files) of at least 256 MiB plus multipart overhead must get through.
MAX_BODY_BYTES = 512 * 1024 * 1024
COOKIE = "mock_session=1; Path=/"
REASONS: dict[int, str] = {529: "Overloaded"}


def is_int(x: Any) -> bool:
    """An int that JSON sent as a number (``true`` is not 1 here)."""
    return isinstance(x, int) and not isinstance(x, bool)


def int_in(x: Any, lo: int, hi: int) -> bool:
    return is_int(x) and lo <= x <= hi


def model_name(req: dict[str, Any]) -> str:
    """The request's model, echoed in answers; ``mock-model`` when it names none."""
    model = req.get("model")
    return model if isinstance(model, str) and model else "mock-model"


class MockHandler(tornado.web.RequestHandler):
    """Records the request, tracks disconnects, renders errors in the endpoint's format."""

    anthropic = False
    _entry: dict[str, Any] | None = None
    _disconnected = False
    _aborted = False  # response deliberately or accidentally left incomplete
    _done = False  # on_finish ran
    _close_waiter: asyncio.Future[None] | None = None  # a scripted hang waits on it
    _request_id: str | None = None

    def initialize(self, state: MockState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        if self.request.path.startswith("/v1/"):
            # Gateway tests check which upstream headers are relayed; keep the id stable
            # across clear() (send_error calls it again).
            # Tornado calls this before initialize(): take the state from the application.
            if self._request_id is None:
                state: MockState = self.application.settings["mock_state"]
                self._request_id = f"req_mock_{next(state.request_ids)}"
            self.set_header("x-request-id", self._request_id)
            self.set_header("Set-Cookie", COOKIE)
            hop = self.request.headers.get("x-mock-hop-header")
            if hop:
                self.set_header("Connection", f"keep-alive, {hop}")
                self.set_header(hop, "1")

    def compute_etag(self) -> str | None:
        return None  # hashing every body would cost the benchmark for nothing

    def prepare(self) -> None:
        if self.state.log is not None:
            self._entry = self.state.log.record(self.request, self._request_id)

    def on_connection_close(self) -> None:
        if self._done:
            return
        self._disconnected = True
        if self._entry is not None and not self._aborted:
            self._entry["disconnected"] = True
        if self._close_waiter is not None and not self._close_waiter.done():
            self._close_waiter.set_result(None)

    def on_finish(self) -> None:
        self._done = True
        if self._entry is not None:
            self._entry["status"] = self.get_status()
            self._entry["finished"] = not (self._disconnected or self._aborted)

    def error_body(self, status: int, message: str | None = None) -> bytes:
        return (anthropic_error if self.anthropic else openai_error)(status, message)

    def send_api_error(self, status: int, message: str | None = None) -> None:
        self.set_status(status, REASONS.get(status))
        if status == 429:
            self.set_header("Retry-After", "1")
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status, message))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado rejects an unparsable form body before prepare(): still log the request, and
        # say why (e.g. "Invalid body: ... no final boundary found") instead of "Bad Request".
        if self._entry is None and self.state.log is not None:
            self._entry = self.state.log.record(self.request, self._request_id)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = getattr(exc, "log_message", None) or tornado.httputil.responses.get(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status_code, reason))

    def json_body(self) -> dict[str, Any] | None:
        """The request's JSON object, or None after answering 400."""
        try:
            req = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            self.send_api_error(400, "request body is not valid JSON")
            return None
        if not isinstance(req, dict):
            self.send_api_error(400, "request body must be a JSON object")
            return None
        return req

    def not_found(self, kind: str, ident: str, param: str = "id") -> None:
        """404 in the OpenAI error shape the real API uses for unknown object ids."""
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": {
            "message": f"No such {kind}: '{ident}'", "type": "invalid_request_error",
            "param": param, "code": "not_found"}}))


class NotFoundHandler(MockHandler):
    """Any other path: 404 with an OpenAI error body (still recorded in the log)."""

    def prepare(self) -> None:
        super().prepare()
        self.send_api_error(404, f"Invalid URL ({self.request.method} {self.request.path})")
