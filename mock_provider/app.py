"""The Tornado application: one ``MockState`` and the route table."""

from __future__ import annotations

import tornado.httpserver
import tornado.web

from mock_provider.control import HealthHandler, MockConfigHandler, MockFaultsHandler, MockRequestsHandler
from mock_provider.endpoints.a2a import A2AHandler
from mock_provider.endpoints.audio import AudioTextHandler, SpeechHandler
from mock_provider.endpoints.completions import ChatCompletionsHandler, CountTokensHandler, MessagesHandler
from mock_provider.endpoints.embeddings import EmbeddingsHandler
from mock_provider.endpoints.images import ImagesHandler
from mock_provider.endpoints.models import ModelHandler, ModelsHandler
from mock_provider.endpoints.moderations import ModerationsHandler
from mock_provider.endpoints.rerank import RerankHandler
from mock_provider.endpoints.responses import ResponseHandler, ResponsesHandler
from mock_provider.endpoints.stores import (
    BatchCancelHandler,
    BatchesHandler,
    BatchHandler,
    FileContentHandler,
    FileHandler,
    FilesHandler,
)
from mock_provider.handler import MAX_BODY_BYTES, NotFoundHandler
from mock_provider.request_log import DEFAULT_LOG_LIMIT, RequestLog
from mock_provider.state import MockState


def make_app(
    default_delay_ms: float = 0,
    *,
    record_requests: bool = True,
    log_limit: int = DEFAULT_LOG_LIMIT,
) -> tornado.web.Application:
    """Build the mock application; ``app.settings["mock_state"].log`` is its RequestLog."""
    state = MockState(
        default_delay_ms=float(default_delay_ms),
        log=RequestLog(log_limit) if record_requests else None,
    )
    kw = {"state": state}
    return tornado.web.Application(
        [
            # The benchmark's two endpoints first: Tornado tries the rules in order.
            (r"/v1/chat/completions", ChatCompletionsHandler, kw),
            (r"/v1/messages", MessagesHandler, kw),
            (r"/v1/messages/count_tokens", CountTokensHandler, kw),
            (r"/v1/models", ModelsHandler, kw),
            (r"/v1/models/(.+)", ModelHandler, kw),
            (r"/v1/embeddings", EmbeddingsHandler, kw),
            (r"/v1/images/generations", ImagesHandler, kw),
            (r"/v1/audio/transcriptions", AudioTextHandler, {**kw, "task": "transcribe"}),
            (r"/v1/audio/translations", AudioTextHandler, {**kw, "task": "translate"}),
            (r"/v1/audio/speech", SpeechHandler, kw),
            (r"/v1/moderations", ModerationsHandler, kw),
            (r"/v1/rerank", RerankHandler, kw),
            (r"/v1/responses", ResponsesHandler, kw),
            (r"/v1/responses/([^/]+)", ResponseHandler, kw),
            (r"/v1/a2a", A2AHandler, kw),
            (r"/v1/files", FilesHandler, kw),
            (r"/v1/files/([^/]+)", FileHandler, kw),
            (r"/v1/files/([^/]+)/content", FileContentHandler, kw),
            (r"/v1/batches", BatchesHandler, kw),
            (r"/v1/batches/([^/]+)", BatchHandler, kw),
            (r"/v1/batches/([^/]+)/cancel", BatchCancelHandler, kw),
            (r"/_mock/requests", MockRequestsHandler, kw),
            (r"/_mock/config", MockConfigHandler, kw),
            (r"/_mock/faults", MockFaultsHandler, kw),
            (r"/_mock/health", HealthHandler),
            (r"/.*", NotFoundHandler, kw),
        ],
        mock_state=state,
        log_function=lambda _handler: None,  # no per-request access log on the hot path
    )


def make_server(app: tornado.web.Application) -> tornado.httpserver.HTTPServer:
    """An HTTPServer for ``app`` that accepts uploads up to MAX_BODY_BYTES (Tornado: 100 MB)."""
    return tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES,
                                         max_buffer_size=MAX_BODY_BYTES)
