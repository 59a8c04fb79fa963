"""``POST /v1/embeddings``: deterministic vectors, as ``float`` lists or ``base64`` float32."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from mock_provider.faults import ScriptedHandler
from mock_provider.handler import int_in, is_int, model_name

EMBEDDING_DIMS = 8


def embedding_vector(item: str | list[int], dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic embedding of one input: ``dims`` multiples of 1/128 in [-1, 1).

    Multiples of 1/128 are exact in float32, so the ``float`` and ``base64`` (little-endian
    float32) encodings of one input decode to identical lists.
    """
    key = item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))
    return [(b - 128) / 128 for b in hashlib.shake_256(key.encode()).digest(dims)]


def _embedding_inputs(inp: Any) -> list[str | list[int]] | None:
    """``input`` as a list of strings / token arrays; None when it is neither."""
    if isinstance(inp, str):
        return [inp]
    if not isinstance(inp, list) or not inp:
        return None
    if all(is_int(t) for t in inp):
        return [inp]
    items: list[str | list[int]] = []
    for x in inp:
        if isinstance(x, str) or (isinstance(x, list) and x and all(is_int(t) for t in x)):
            items.append(x)
        else:
            return None
    return items


def embeddings_body(inputs: list[str | list[int]], model: str, dims: int, b64: bool) -> dict[str, Any]:
    """The ``list`` of ``embedding`` objects; tokens are words (or token-array lengths)."""
    data: list[dict[str, Any]] = []
    tokens = 0
    for i, item in enumerate(inputs):
        vec = embedding_vector(item, dims)
        tokens += max(1, len(item.split())) if isinstance(item, str) else len(item)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class EmbeddingsHandler(ScriptedHandler):
    """POST /v1/embeddings: ``float`` lists or ``base64`` float32 (what the SDK asks for)."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        inputs = _embedding_inputs(req.get("input"))
        if inputs is None:
            self.send_api_error(400, "'input' must be a string, strings, or token arrays")
            return
        fmt = req.get("encoding_format")
        if fmt not in (None, "float", "base64"):
            self.send_api_error(400, "'encoding_format' must be 'float' or 'base64'")
            return
        dims = req.get("dimensions")
        dims = dims if int_in(dims, 1, 4096) else EMBEDDING_DIMS
        await self.reply(embeddings_body(inputs, model_name(req), dims, fmt == "base64"), b)
