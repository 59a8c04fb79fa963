"""What one mock application remembers while it runs: settings, id counters, the model
catalog, the in-memory stores, the request log and the per-model fault scripts.

One ``MockState`` per application (``make_app``), handed to every handler, so two mocks in
one process (or one test) never share ids or stores.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from mock_provider.plan import CREATED
from mock_provider.request_log import RequestLog
from mock_provider.scripting import FaultBook

MODEL_IDS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "mock-model",
)
STORE_LIMIT = 10_000  # per in-memory store (responses, files, batches)


def model_object(model_id: str) -> dict[str, Any]:
    """One entry of GET /v1/models, as OpenAI lists it."""
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "mock"}


class BoundedStore(OrderedDict[str, Any]):
    """Insertion-ordered id -> object map that forgets its oldest entries past a limit."""

    def __init__(self, limit: int = STORE_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass(slots=True)
class MockState:
    """Per-application settings and in-memory stores shared by the handlers."""

    default_delay_ms: float
    log: RequestLog | None
    # The <n> of chatcmpl-mock<n>, file-mock<n>, batch_mock<n>, ...: one sequence for all objects.
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    request_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # req_mock_<n>
    models_fault: str | None = None  # catalog fault set through /_mock/config
    model_ids: tuple[str, ...] = MODEL_IDS
    models_body: bytes = b""
    responses: BoundedStore = field(default_factory=BoundedStore)
    files: BoundedStore = field(default_factory=BoundedStore)  # id -> (file object, bytes)
    batches: BoundedStore = field(default_factory=BoundedStore)
    faults: FaultBook = field(default_factory=FaultBook)  # /_mock/faults scripts, requests per model
    prompt_cache: BoundedStore = field(default_factory=BoundedStore)  # prefix digest -> True

    def cached_tokens(self, prefixes: list[tuple[bytes, int]]) -> int:
        """Tokens of the longest prefix seen before (a cache hit), remembering the whole prompt."""
        hit = next((tokens for digest, tokens in reversed(prefixes) if digest in self.prompt_cache), 0)
        if prefixes:
            self.prompt_cache.put(prefixes[-1][0], True)
        return hit

    def __post_init__(self) -> None:
        self.set_models(MODEL_IDS)

    def set_models(self, ids: tuple[str, ...]) -> None:
        """Change the catalog and pre-render GET /v1/models (served on every catalog refresh)."""
        self.model_ids = ids
        self.models_body = orjson.dumps(
            {"object": "list", "data": [model_object(m) for m in ids]}
        )

    def config(self) -> dict[str, Any]:
        return {"models_fault": self.models_fault, "models": list(self.model_ids)}

