"""OpenAI clients, OpenAI providers: request and answer as written; streams framed and metered."""

from __future__ import annotations

from converters.base import ConverterSpec
from converters.sse import SSEFramer
from converters.translation import Translation
from converters.usage import OpenAIStreamUsage, usage_from_openai_body

TRANSLATION = Translation(
    client="openai",
    provider="openai",
    endpoint="chat/completions",
    stream=(
        ConverterSpec(
            "sse-frame", "openai", "openai", lambda _: SSEFramer(),
            "Forward only whole SSE events, so that an upstream cut never tears one.",
        ),
        ConverterSpec(
            "openai-usage", "openai", "openai", lambda _: OpenAIStreamUsage(),
            "Record the usage chunk of an OpenAI stream (tokens in, out, cached, reasoning).",
        ),
    ),
    usage=usage_from_openai_body,
)
