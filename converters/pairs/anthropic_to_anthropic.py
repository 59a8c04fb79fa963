"""Anthropic clients, Anthropic providers: request and answer as written; streams framed and
metered. The client's API version and beta flags reach the provider."""

from __future__ import annotations

from converters.base import ConverterSpec
from converters.sse import SSEFramer
from converters.translation import Translation
from converters.usage import AnthropicStreamUsage, usage_from_anthropic

TRANSLATION = Translation(
    client="anthropic",
    provider="anthropic",
    endpoint="messages",
    stream=(
        ConverterSpec(
            "sse-frame-anthropic", "anthropic", "anthropic", lambda _: SSEFramer(),
            "Forward only whole Anthropic SSE events, so that an upstream cut never tears one.",
        ),
        ConverterSpec(
            "anthropic-usage", "anthropic", "anthropic", lambda _: AnthropicStreamUsage(),
            "Record the usage of an Anthropic stream (message_start and message_delta).",
        ),
    ),
    usage=usage_from_anthropic,
    client_headers=("anthropic-beta", "anthropic-version"),
)
