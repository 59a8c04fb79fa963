"""Converters by name, with the stream format each accepts and produces.

The compiler resolves names here once per (re)load and checks that a chain's
formats line up; requests only call the resolved factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from converters.base import Chain, Context, StreamConverter
from converters.chat_streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from converters.sse import SSEFramer
from converters.usage import AnthropicStreamUsage, OpenAIStreamUsage


@dataclass(frozen=True, slots=True)
class ConverterSpec:
    """A registered converter: what it reads, what it writes, how to make one per request."""

    name: str
    accepts: str
    produces: str
    factory: Callable[[Context], StreamConverter]
    summary: str


REGISTRY: dict[str, ConverterSpec] = {
    spec.name: spec
    for spec in (
        ConverterSpec(
            "sse-frame", "openai", "openai", lambda _: SSEFramer(),
            "Forward only whole SSE events, so that an upstream cut never tears one.",
        ),
        ConverterSpec(
            "openai-usage", "openai", "openai", lambda _: OpenAIStreamUsage(),
            "Record the usage chunk of an OpenAI stream (tokens in, out, cached, reasoning).",
        ),
        ConverterSpec(
            "sse-frame-anthropic", "anthropic", "anthropic", lambda _: SSEFramer(),
            "Forward only whole Anthropic SSE events, so that an upstream cut never tears one.",
        ),
        ConverterSpec(
            "anthropic-usage", "anthropic", "anthropic", lambda _: AnthropicStreamUsage(),
            "Record the usage of an Anthropic stream (message_start and message_delta).",
        ),
        ConverterSpec(
            "anthropic-to-openai", "anthropic", "openai", AnthropicToOpenAIStream,
            "Turn Anthropic Messages events into OpenAI chat.completion.chunks (and record usage).",
        ),
        ConverterSpec(
            "openai-to-anthropic", "openai", "anthropic", OpenAIToAnthropicStream,
            "Turn OpenAI chat.completion.chunks into Anthropic Messages events (and record usage).",
        ),
    )
}

# Converters every chat stream gets, by (client format, provider format).
FORMAT_CHAINS: dict[tuple[str, str], tuple[str, ...]] = {
    ("openai", "openai"): ("sse-frame", "openai-usage"),
    ("anthropic", "anthropic"): ("sse-frame-anthropic", "anthropic-usage"),
    ("openai", "anthropic"): ("anthropic-to-openai",),  # frames its input itself
    ("anthropic", "openai"): ("openai-to-anthropic",),
}


class UnsupportedConversion(ValueError):
    """No converters exist yet between these two wire formats."""


@dataclass(frozen=True, slots=True)
class ChainPlan:
    """A resolved chain: builds a fresh Chain per request without looking anything up."""

    specs: tuple[ConverterSpec, ...]

    def build(self, context: Context) -> Chain:
        return Chain([spec.factory(context) for spec in self.specs])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)


def plan(client_format: str, provider_format: str, extra: tuple[str, ...] = ()) -> ChainPlan:
    """The chain for a route and provider; ValueError says what does not line up."""
    implicit = FORMAT_CHAINS.get((client_format, provider_format))
    if implicit is None:
        raise UnsupportedConversion(
            f"no conversion from {provider_format} streams to {client_format} clients is available"
        )
    specs: list[ConverterSpec] = []
    current = provider_format
    for name in (*implicit, *extra):
        spec = REGISTRY.get(name)
        if spec is None:
            raise ValueError(f"unknown converter '{name}' (known: {', '.join(sorted(REGISTRY))})")
        if spec.accepts != current:
            raise ValueError(
                f"converter '{name}' reads {spec.accepts} streams but is given {current}"
            )
        specs.append(spec)
        current = spec.produces
    if current != client_format:
        raise ValueError(f"chain ends in {current} but the client speaks {client_format}")
    return ChainPlan(tuple(specs))
