"""The ``/_mock`` control API tests steer the mock with: the request log
(``GET|DELETE /_mock/requests``), the catalog settings (``GET|POST|DELETE /_mock/config``),
the per-model fault scripts and request counts (``GET|POST|DELETE /_mock/faults``) and a
liveness probe (``GET /_mock/health``). No ``/v1`` headers, no recording."""

from __future__ import annotations

import re

import orjson
import tornado.web

from mock_provider.scripting import SCRIPT_LIMIT, parse_script
from mock_provider.state import MODEL_IDS, MockState

_MODELS_FAULT_RE = re.compile(r"hang|slow-\d+|[45]\d\d")


class MockRequestsHandler(tornado.web.RequestHandler):
    """GET lists recorded requests (oldest first); DELETE clears them."""

    def initialize(self, state: MockState) -> None:
        self.state = state

    def get(self) -> None:
        entries = self.state.log.entries() if self.state.log is not None else []
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(entries))

    def delete(self) -> None:
        if self.state.log is not None:
            self.state.log.clear()
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"cleared":true}')


class MockConfigHandler(tornado.web.RequestHandler):
    """GET shows, POST merges, DELETE resets the catalog settings gateway tests steer.

    ``models_fault``: ``"<status>"`` (400..599), ``"hang"``, ``"slow-<ms>"`` or null;
    ``models``: the ids GET /v1/models reports, or null for the defaults.
    """

    def initialize(self, state: MockState) -> None:
        self.state = state

    def _send(self, status: int = 200, error: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": error} if error else self.state.config()))

    def get(self) -> None:
        self._send()

    def delete(self) -> None:
        self.state.models_fault = None
        self.state.set_models(MODEL_IDS)
        self._send()

    def post(self) -> None:
        try:
            cfg = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            cfg = None
        if not isinstance(cfg, dict) or set(cfg) - {"models_fault", "models"}:
            self._send(400, "expected an object with keys models_fault and/or models")
            return
        fault = cfg.get("models_fault", self.state.models_fault)
        if fault is not None:
            fault = str(fault)
            if not _MODELS_FAULT_RE.fullmatch(fault) or (fault.isdigit() and int(fault) > 599):
                self._send(400, "models_fault must be '<400..599>', 'hang', 'slow-<ms>' or null")
                return
        ids = cfg.get("models", self.state.model_ids) or MODEL_IDS
        if not isinstance(ids, (list, tuple)) or not all(isinstance(m, str) and m for m in ids):
            self._send(400, "models must be a list of non-empty strings or null")
            return
        self.state.models_fault = fault
        if "models" in cfg:
            self.state.set_models(tuple(ids))
        self._send()


class MockFaultsHandler(tornado.web.RequestHandler):
    """GET shows the scripts and the requests seen per model, POST sets one model's script
    (``scripting.parse_script`` says how), DELETE clears every script and count."""

    def initialize(self, state: MockState) -> None:
        self.state = state

    def _send(self, status: int = 200, error: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": error} if error else self.state.faults.view()))

    def get(self) -> None:
        self._send()

    def delete(self) -> None:
        self.state.faults.clear()
        self._send()

    def post(self) -> None:
        try:
            spec = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            spec = None
        parsed = parse_script(spec)
        if isinstance(parsed, str):
            self._send(400, parsed)
        elif not self.state.faults.put(*parsed):
            self._send(400, f"at most {SCRIPT_LIMIT} models may have a script at once")
        else:
            self._send()


class HealthHandler(tornado.web.RequestHandler):
    """Liveness probe for scripts waiting on the mock."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(b"OK")
