"""``POST /v1/images/generations``: tiny valid PNGs whose colour derives from the prompt."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

from mock_provider.faults import ScriptedHandler
from mock_provider.handler import int_in
from mock_provider.plan import CREATED


def image_png(prompt: str, index: int = 0) -> bytes:
    """A valid 1x1 PNG whose colour derives from the prompt and the image's index in ``n``."""
    rgb = hashlib.sha256(f"{index}\0{prompt}".encode()).digest()[:3]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + rgb)) + chunk(b"IEND", b""))


class ImagesHandler(ScriptedHandler):
    """POST /v1/images/generations: ``n`` 1x1 PNGs as ``b64_json`` (default) or ``url``."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        prompt, n = req.get("prompt"), req.get("n", 1)
        fmt = req.get("response_format") or "b64_json"
        if not isinstance(prompt, str) or not prompt:
            self.send_api_error(400, "'prompt' is required")
            return
        if not int_in(n, 1, 10) or fmt not in ("b64_json", "url"):
            self.send_api_error(400, "'n' must be 1..10 and 'response_format' b64_json or url")
            return
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        data = [
            {"b64_json": base64.b64encode(image_png(prompt, i)).decode(), "revised_prompt": prompt}
            if fmt == "b64_json"
            else {"url": f"https://images.mock.invalid/{digest}/{i}.png", "revised_prompt": prompt}
            for i in range(n)
        ]
        words = len(prompt.split())
        await self.reply({
            "created": CREATED, "data": data,
            "usage": {"input_tokens": words, "output_tokens": 16 * n, "total_tokens": words + 16 * n,
                      "input_tokens_details": {"image_tokens": 0, "text_tokens": words}},
        }, b)
