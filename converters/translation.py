"""What a chat exchange needs besides the stream chain, by (client format, provider format).

The upstream endpoint, the request conversion, the conversion of a buffered
answer, and how to read usage from that answer. Same-format pairs convert nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from converters.base import Context
from converters.chat_requests import anthropic_to_openai_request, openai_to_anthropic_request
from converters.chat_responses import anthropic_to_openai_response, openai_to_anthropic_response
from converters.usage import Usage, usage_from_anthropic_body, usage_from_openai_body

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Translation:
    endpoint: str  # chat endpoint under the provider's url
    request: Callable[[Document], Document] | None  # None: sent as the client wrote it
    response: Callable[[Document, Context], Document] | None  # None: relayed as is
    usage: Callable[[bytes], Usage]  # read from the provider's buffered answer


TRANSLATIONS: dict[tuple[str, str], Translation] = {
    ("openai", "openai"): Translation("chat/completions", None, None, usage_from_openai_body),
    ("anthropic", "anthropic"): Translation("messages", None, None, usage_from_anthropic_body),
    ("openai", "anthropic"): Translation(
        "messages", openai_to_anthropic_request, anthropic_to_openai_response, usage_from_anthropic_body
    ),
    ("anthropic", "openai"): Translation(
        "chat/completions", anthropic_to_openai_request, openai_to_anthropic_response, usage_from_openai_body
    ),
}
