"""Format pairs: one Translation each, looked up by (client format, provider format).

A toy pair is registered from here, in a Registry of its own, to show that a new pair
needs only its Translation; the gateway's built-in registry is left as it is.
"""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest

from converters.base import Context, ConverterSpec
from converters.chat_streams import AnthropicToOpenAIStream
from converters.pairs import PAIRS, openai_to_anthropic, openai_to_openai
from converters.registry import BUILT_IN, Registry, UnsupportedConversion, plan
from dsl.validate import SCHEMA_DIR

# "toy" clients speak OpenAI's chat completions under another name; an Anthropic provider
# serves them through the OpenAI client pair's functions.
TOY = replace(
    openai_to_anthropic.TRANSLATION,
    client="toy",
    stream=(ConverterSpec("anthropic-to-toy", "anthropic", "toy", AnthropicToOpenAIStream,
                          "Anthropic events as toy chunks."),),
)

_ANTHROPIC_STREAM = b"".join(
    b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    for event in (
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    )
)


@pytest.mark.parametrize(
    ("client", "provider", "endpoint", "names"),
    [
        ("openai", "openai", "chat/completions", ("sse-frame", "openai-usage")),
        ("anthropic", "anthropic", "messages", ("sse-frame-anthropic", "anthropic-usage")),
        ("openai", "anthropic", "messages", ("anthropic-to-openai",)),
        ("anthropic", "openai", "chat/completions", ("openai-to-anthropic",)),
    ],
)
def test_built_in_pairs(client: str, provider: str, endpoint: str, names: tuple[str, ...]) -> None:
    chain_plan = plan(client, provider)
    assert chain_plan.names == names
    assert chain_plan.translation is BUILT_IN.translations[(client, provider)]
    assert chain_plan.translation.endpoint == endpoint


def test_a_toy_pair_is_looked_up_by_its_registry() -> None:
    registry = Registry.of((*PAIRS, TOY))
    chain_plan = registry.plan("toy", "anthropic")
    assert chain_plan.translation is TOY
    assert chain_plan.names == ("anthropic-to-toy",)
    assert registry.converters["anthropic-to-toy"] is TOY.stream[0]
    assert registry.plan("openai", "openai").names == plan("openai", "openai").names

    chain = chain_plan.build(Context({"stream": True}, "toy-model"))
    out = chain.feed(_ANTHROPIC_STREAM) + chain.close()
    assert b'"model":"toy-model"' in out and b'"content":"hi"' in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert TOY.request is not None
    assert TOY.request({"messages": [{"role": "user", "content": "x"}]})["max_tokens"] == 4096

    with pytest.raises(UnsupportedConversion):
        plan("toy", "anthropic")  # the built-in registry does not know it
    with pytest.raises(ValueError, match="unknown converter 'anthropic-to-toy'"):
        plan("openai", "openai", ("anthropic-to-toy",))


def test_a_registry_refuses_pairs_that_do_not_line_up() -> None:
    with pytest.raises(ValueError, match="two translations from openai clients to anthropic providers"):
        Registry.of((*PAIRS, replace(TOY, client="openai", stream=openai_to_anthropic.TRANSLATION.stream)))
    with pytest.raises(ValueError, match="two converters are named 'sse-frame'"):
        Registry.of((*PAIRS, replace(TOY, stream=(replace(openai_to_openai.TRANSLATION.stream[0]),))))
    with pytest.raises(ValueError, match="chain ends in openai but the client speaks toy"):
        Registry.of((replace(TOY, stream=openai_to_anthropic.TRANSLATION.stream),))
    with pytest.raises(ValueError, match="converter 'sse-frame' reads openai streams but is given anthropic"):
        Registry.of((replace(TOY, stream=openai_to_openai.TRANSLATION.stream),))


def test_the_schema_names_the_formats_the_pairs_speak() -> None:
    """A new wire format is named in routes.yaml's schema, or no route could use it."""
    definitions = json.loads((SCHEMA_DIR / "routes.schema.json").read_text(encoding="utf-8"))["$defs"]
    provider_formats = definitions["provider"]["properties"]["format"]["enum"]
    client_formats = definitions["route"]["properties"]["ingress"]["enum"]
    assert set(provider_formats) == {provider for _, provider in BUILT_IN.translations}
    assert set(client_formats) == {client for client, _ in BUILT_IN.translations}
