"""Audio: ``/v1/audio/transcriptions`` and ``/translations`` (multipart uploads, echoed so a
test can prove the gateway forwarded them byte-identical) and ``/v1/audio/speech`` (binary or
SSE audio, streamed in chunks)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from mock_provider.endpoints.uploads import upload_info
from mock_provider.faults import ScriptedHandler
from mock_provider.handler import MAX_BODY_BYTES, int_in
from mock_provider.state import MockState

SPEECH_DEFAULT_BYTES = 512 * 1024
SPEECH_CHUNK_BYTES = 64 * 1024


def speech_bytes(text: str, voice: str, size: int) -> bytes:
    """The mock's "audio" for ``text`` spoken by ``voice``: ``size`` SHAKE-256 bytes.

    Public so a test can compute the exact body a speech request must come back with.
    """
    return hashlib.shake_256(f"{voice}\0{text}".encode()).digest(size)


SPEECH_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class AudioTextHandler(ScriptedHandler):
    """POST /v1/audio/transcriptions and /translations (multipart), echoing what arrived.

    ``x_mock`` (and headers ``x-mock-file-sha256`` / ``x-mock-file-bytes``) let a test prove
    the gateway forwarded an upload byte-identical, boundary included.
    """

    def initialize(self, state: MockState, task: str = "transcribe") -> None:  # type: ignore[override]
        self.state = state
        self.task = task

    async def post(self) -> None:
        if not self.request.headers.get("Content-Type", "").startswith("multipart/form-data"):
            self.send_api_error(400, "expected a multipart/form-data body")
            return
        upload = upload_info(self.request)
        if upload is None:
            self.send_api_error(400, "'file' is required")
            return
        info, _ = upload
        fields = info["fields"]
        if (b := await self.gate(fields.get("model"))) is None:
            return
        size = info["file_bytes"]
        verb = "transcribed" if self.task == "transcribe" else "translated"
        text = f"{verb} {size} bytes"
        self.set_header("x-mock-file-sha256", info["file_sha256"])
        self.set_header("x-mock-file-bytes", str(size))
        fmt = fields.get("response_format") or "json"
        delay, cut = self.delay_s(b), b.fault == "cut"
        if fmt in ("text", "srt", "vtt"):
            body = {"text": text + "\n",
                    "srt": f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n",
                    "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"}[fmt]
            await self.respond(body.encode(), delay, cut, "text/plain; charset=utf-8")
            return
        seconds = round(size / 32000, 3)  # as if 16 kHz 16-bit mono
        obj: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            obj = {"task": self.task, "language": "english", "duration": seconds, "text": text,
                   "segments": []}
        obj["usage"] = {"type": "duration", "seconds": seconds}
        obj["x_mock"] = info
        await self.respond(orjson.dumps(obj), delay, cut)


class SpeechHandler(ScriptedHandler):
    """POST /v1/audio/speech: ``speech_bytes(input, voice, size)`` in 64 KiB flushed chunks.

    ``size`` is 512 KiB unless the body has ``"x_mock_bytes": N``; ``stream_format: "sse"``
    sends the same bytes as base64 ``speech.audio.delta`` events.
    """

    _sse = False

    def stream_error_event(self) -> bytes:
        if not self._sse:
            return b""
        return b"data: " + orjson.dumps(
            {"type": "error", "error": {"message": "mock fault: error mid-stream",
                                        "type": "server_error"}}) + b"\n\n"

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        text, voice = req.get("input"), req.get("voice", "alloy")
        if isinstance(voice, dict):
            voice = voice.get("id")
        fmt = req.get("response_format") or "mp3"
        size = req.get("x_mock_bytes", SPEECH_DEFAULT_BYTES)
        if not isinstance(text, str) or not isinstance(voice, str):
            self.send_api_error(400, "'input' and 'voice' are required strings")
            return
        if fmt not in SPEECH_TYPES or not int_in(size, 0, MAX_BODY_BYTES):
            self.send_api_error(400, f"unsupported response_format {fmt!r} or x_mock_bytes")
            return
        audio = speech_bytes(text, voice, size)
        chunks = [audio[i:i + SPEECH_CHUNK_BYTES] for i in range(0, len(audio), SPEECH_CHUNK_BYTES)]
        if req.get("stream_format") == "sse":
            self._sse = True
            words = len(text.split())
            events = [b"data: " + orjson.dumps(
                {"type": "speech.audio.delta", "audio": base64.b64encode(c).decode()}) + b"\n\n"
                for c in chunks]
            events.append(b"data: " + orjson.dumps({"type": "speech.audio.done", "usage": {
                "input_tokens": words, "output_tokens": len(chunks),
                "total_tokens": words + len(chunks)}}) + b"\n\n")
            await self.stream(events, self.delay_s(b), b.fault)
            return
        await self.stream(chunks, self.delay_s(b), b.fault, SPEECH_TYPES[fmt])
