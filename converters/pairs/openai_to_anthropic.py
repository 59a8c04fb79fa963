"""OpenAI clients, Anthropic providers: chat completions requests become Messages requests,
and Messages answers and events come back as chat completions and chunks."""

from __future__ import annotations

from converters.base import ConverterSpec
from converters.chat_requests import openai_to_anthropic_request
from converters.chat_responses import anthropic_to_openai_body
from converters.chat_streams import AnthropicToOpenAIStream
from converters.translation import Translation
from converters.usage import usage_from_anthropic

TRANSLATION = Translation(
    client="openai",
    provider="anthropic",
    endpoint="messages",
    request=openai_to_anthropic_request,
    response=anthropic_to_openai_body,
    stream=(  # the converter frames its input itself
        ConverterSpec(
            "anthropic-to-openai", "anthropic", "openai", AnthropicToOpenAIStream,
            "Turn Anthropic Messages events into OpenAI chat.completion.chunks (and record usage).",
        ),
    ),
    usage=usage_from_anthropic,
)
