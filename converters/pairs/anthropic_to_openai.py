"""Anthropic clients, OpenAI providers: Messages requests become chat completions requests,
and chat completions and chunks come back as Messages answers and events."""

from __future__ import annotations

from converters.base import ConverterSpec
from converters.chat_requests import anthropic_to_openai_request
from converters.chat_responses import openai_to_anthropic_body
from converters.chat_streams import OpenAIToAnthropicStream
from converters.translation import Translation
from converters.usage import usage_from_openai

TRANSLATION = Translation(
    client="anthropic",
    provider="openai",
    endpoint="chat/completions",
    request=anthropic_to_openai_request,
    response=openai_to_anthropic_body,
    stream=(  # the converter frames its input itself
        ConverterSpec(
            "openai-to-anthropic", "openai", "anthropic", OpenAIToAnthropicStream,
            "Turn OpenAI chat.completion.chunks into Anthropic Messages events (and record usage).",
        ),
    ),
    usage=usage_from_openai,
)
