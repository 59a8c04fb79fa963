"""POST /v1/messages/count_tokens: the provider's own count where it has one, else an estimate.

The estimate (about four characters a token, over every text the model would read)
is what a gateway can say without the provider's tokenizer; the answer marks it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import orjson

from converters.encoding import encode
from dsl.handler_rules import HandlerRules
from handlers.forward import KEYS, STAGES, ForwardHandler, compile_route

_CHARS_PER_TOKEN = 4


class CountTokensHandler(ForwardHandler):
    # A forward route that answers with an estimate where no provider counts.
    rules = HandlerRules(
        "count_tokens",
        keys=KEYS,
        check=functools.partial(compile_route, serves_without_provider=True),
        stages=STAGES,
        redaction="json",  # the prompt goes to the provider's counter: redacted like any request
    )

    async def post(self, **params: str) -> None:
        if self.route.providers:
            await self.forward(params, self.request.body)
            return
        try:
            document = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            return self.fail(400, f"request body is not valid JSON: {exc.args[0]}")
        if not isinstance(document, dict) or not isinstance(document.get("messages"), list):
            return self.fail(400, "'messages' is required and must be a list")
        try:
            encode(document, "the request body")  # bounds the nesting _texts walks
        except ValueError as exc:
            return self.fail(400, str(exc), "invalid_request")
        characters = sum(len(text) for text in _texts(document.get("system")))
        characters += sum(len(text) for text in _texts(document["messages"]))
        if document.get("tools"):
            characters += len(orjson.dumps(document["tools"]))
        self.set_header("Content-Type", "application/json")
        self.finish(
            orjson.dumps({"input_tokens": math.ceil(characters / _CHARS_PER_TOKEN), "estimated": True})
        )

    get = put = patch = delete = head = options = post  # type: ignore[assignment]


def _texts(value: Any) -> list[str]:
    """Every string a prompt carries, in messages, content blocks and tool results alike."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        return [
            text
            for key, item in value.items()
            if key not in ("type", "role", "id", "source")
            for text in _texts(item)
        ]
    return []
