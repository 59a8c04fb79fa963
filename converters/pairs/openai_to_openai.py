"""OpenAI clients, OpenAI providers: request and answer as written (a stream asked for its usage);
streams framed and metered."""

from __future__ import annotations

from converters.base import ConverterSpec
from converters.sse import SSEFramer
from converters.translation import Translation
from converters.usage import OpenAIStreamUsage, asks_for_usage, usage_from_openai

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
            "openai-usage", "openai", "openai",
            # `hide`, given by position: a keyword argument costs the call about 0.9 K instructions
            lambda ctx: OpenAIStreamUsage(not asks_for_usage(ctx.client_request)),
            "Record the usage chunk of an OpenAI stream (tokens in, out, cached, reasoning); relay it "
            "only to a client that asked for it.",
        ),
    ),
    usage=usage_from_openai,
    asks_stream_usage=True,
)
