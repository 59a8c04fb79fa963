"""Extension endpoints declared in routes.yaml, relayed by the generic forward handler."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import time

import openai
import pytest

from mock_provider import speech_bytes
from tests.support import ALT_KEY, CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock


def _last(mock: Mock, path: str) -> dict:
    return [r for r in mock.requests() if r["path"] == path][-1]


def test_embeddings_with_usage(gateway: Gateway, mock: Mock) -> None:
    answer = gateway.openai().embeddings.create(model="text-embedding-3-small", input=["a b c", "d"])
    assert len(answer.data) == 2 and len(answer.data[0].embedding) > 0
    assert answer.usage.prompt_tokens > 0
    sent = _last(mock, "/v1/embeddings")
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert CLIENT_TOKEN not in json.dumps(sent["headers"])
    stats = json.loads(gateway.get("/statsz")[2])
    assert stats["models"]["text-embedding-3-small"]["input_tokens"] > 0
    assert stats["keys"]["admin"]["input_tokens"] > 0


def test_provider_slash_model_picks_the_provider(gateway: Gateway, mock: Mock) -> None:
    gateway.openai().embeddings.create(model="alt/text-embedding-3-large", input="x")
    sent = _last(mock, "/v1/embeddings")
    assert sent["headers"]["authorization"] == f"Bearer {ALT_KEY}"
    assert json.loads(sent["body"])["model"] == "text-embedding-3-large"


def test_prefer_and_format_urls(gateway: Gateway, mock: Mock) -> None:
    """images prefers alt, whose format_urls sends images to another path."""
    status, _, _ = gateway.request("POST", "/v1/images/generations", b'{"prompt": "x"}')
    sent = _last(mock, "/custom/images")
    assert sent["headers"]["authorization"] == f"Bearer {ALT_KEY}"
    assert status == 404  # the mock has no /custom/images: its answer is relayed as is


def test_prefer_of_an_undeclared_provider_falls_back_to_the_first(gateway: Gateway, mock: Mock) -> None:
    answer = gateway.openai().moderations.create(input="I want to harm someone")
    assert answer.results[0].flagged
    assert _last(mock, "/v1/moderations")["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"


def test_providers_list_walks_past_a_refused_connection(gateway: Gateway, mock: Mock) -> None:
    body = json.dumps({"model": "rerank-v3", "query": "capital of France",
                       "documents": ["Paris is the capital.", "The Eiffel Tower is in Paris."]}).encode()
    status, _, answer = gateway.request("POST", "/v1/rerank", body)
    assert status == 200
    assert json.loads(answer)["results"][0]["index"] == 0
    assert _last(mock, "/v1/rerank")["headers"]["authorization"] == f"Bearer {ALT_KEY}"


def test_images_through_the_sdk(gateway: Gateway) -> None:
    answer = gateway.openai().images.generate(model="mock/dall-e-3", prompt="a sunset", n=1)
    assert answer.data and (answer.data[0].b64_json or answer.data[0].url)


def test_speech_is_byte_identical_with_its_content_type(gateway: Gateway) -> None:
    client = gateway.openai()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello world", response_format="wav"
    ) as response:
        assert response.headers["content-type"].startswith("audio/wav")
        audio = response.read()
    assert audio == speech_bytes("Hello world", "alloy", len(audio))
    assert len(audio) > 100_000


def test_transcription_multipart(gateway: Gateway, mock: Mock) -> None:
    data = os.urandom(300_000)
    answer = gateway.openai().audio.transcriptions.create(
        model="whisper-1", file=("speech.mp3", io.BytesIO(data), "audio/mpeg")
    )
    assert str(len(data)) in answer.text
    sent = _last(mock, "/v1/audio/transcriptions")
    assert sent["headers"]["content-type"].startswith("multipart/form-data; boundary=")


def test_large_upload_is_streamed_byte_identical(gateway: Gateway, mock: Mock) -> None:
    """20 MiB reach the provider unchanged, and the gateway never holds the upload whole."""
    data = os.urandom(20 * 1024 * 1024)
    before = gateway.memory_kib("VmHWM")
    boundary = "----gateway-test-boundary-7f3a"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
        f"Content-Type: audio/wav\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = gateway.request("POST", "/v1/audio/transcriptions", body,
                                        {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    echo = json.loads(answer)["x_mock"]
    assert echo["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert echo["file_bytes"] == len(data) and echo["boundary"] == boundary
    grown_kib = gateway.memory_kib("VmHWM") - before
    print(f"gateway peak RSS grew by {grown_kib / 1024:.1f} MiB for a 20 MiB upload")
    assert grown_kib < 20 * 1024, f"peak RSS grew by {grown_kib} KiB"


def test_files_lifecycle(gateway: Gateway) -> None:
    client = gateway.openai()
    created = client.files.create(file=("batch.jsonl", io.BytesIO(b'{"a": 1}\n'), "application/jsonl"),
                                  purpose="batch")
    assert client.files.retrieve(created.id).id == created.id
    assert any(f.id == created.id for f in client.files.list())
    assert client.files.content(created.id).read() == b'{"a": 1}\n'
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_batches_lifecycle(gateway: Gateway) -> None:
    client = gateway.openai()
    batch = client.batches.create(input_file_id="file-abc", endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert client.batches.retrieve(batch.id).id == batch.id
    assert any(b.id == batch.id for b in client.batches.list())
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")


def test_responses_create_stream_retrieve_delete(gateway: Gateway) -> None:
    client = gateway.openai()
    response = client.responses.create(model="gpt-4o-mini", input="What is the capital of France?")
    assert response.output_text
    assert client.responses.retrieve(response.id).id == response.id
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    client.responses.delete(response.id)


def test_a2a_json_rpc(gateway: Gateway) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "message/send",
                       "params": {"message": "Hello from agent A"}}).encode()
    status, _, answer = gateway.request("POST", "/v1/a2a", body)
    assert status == 200 and json.loads(answer)["id"] == 7


def test_headers_that_pass_and_headers_that_do_not(gateway: Gateway, mock: Mock) -> None:
    status, headers, _ = gateway.request(
        "POST", "/v1/embeddings", b'{"model": "fault-429", "input": "x"}',
        {"Cookie": "s=1", "Connection": "keep-alive, x-private", "x-request-id": "client-id-1"},
    )
    assert status == 429 and headers["retry-after"] == "1"
    assert headers["x-request-id"] == "client-id-1"
    assert headers["x-upstream-request-id"].startswith("req_mock_")
    assert "set-cookie" not in headers
    sent = _last(mock, "/v1/embeddings")
    assert "cookie" not in sent["headers"]
    assert sent["headers"]["x-request-id"] == "client-id-1"


def test_bad_json_body_is_400(gateway: Gateway) -> None:
    status, _, answer = gateway.request("POST", "/v1/embeddings", b"{nope")
    assert status == 400 and "not valid JSON" in json.loads(answer)["error"]["message"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_new_endpoint_by_yaml_alone(fresh_gateway: Gateway) -> None:
    path = "/v1/audio/translations"
    assert fresh_gateway.request("POST", path, b"{}")[0] == 404
    config = fresh_gateway.config.read_text()
    fresh_gateway.config.write_text(
        config + "  - {match: POST /v1/audio/translations, handler: forward, body: stream}\n"
    )
    fresh_gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "configuration reloaded" not in fresh_gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = fresh_gateway.openai().audio.translations.create(
        model="whisper-1", file=("fr.mp3", io.BytesIO(b"bonjour" * 100), "audio/mpeg")
    )
    assert "700" in answer.text


@pytest.mark.parametrize(
    "path",
    ["/v1/batches/abc#/cancel", "/v1/batches/abc%23/cancel", "/v1/batches/abc%3Fx=1/cancel",
     "/v1/batches/abc%0d%0aX:%20y/cancel", "/v1/batches/%252e%252e/cancel", "/v1/batches/%2e%2e/cancel"],
    ids=["hash", "encoded-hash", "encoded-question-mark", "crlf", "double-encoded-dots", "dots"],
)
def test_a_parameter_that_would_cut_or_leave_the_endpoint_is_refused(
    gateway: Gateway, mock: Mock, path: str
) -> None:
    """`abc#/cancel` used to reach the provider as POST /batches/abc, around allowed_endpoints."""
    mock.clear()
    status, _, answer = gateway.request("POST", path, b"{}")
    assert status == 400 and json.loads(answer)["error"]["code"] == "bad_path", answer
    assert mock.requests() == [], "nothing reached the provider"


@pytest.mark.parametrize(
    ("raw_path", "sent_path", "sent_query"),
    [
        (b"/v1/files/file-\xc3\xa9?purpose=\xc3\xa9", "/v1/files/file-%C3%A9", "purpose=%C3%A9"),
        (b"/v1/files/file-\xff?purpose=\xfe", "/v1/files/file-%FF", "purpose=%FE"),
        (b"/v1/files/a%2Fb%20c", "/v1/files/a%2Fb%20c", ""),
        (b"/v1/files/a+b:c@d", "/v1/files/a+b:c@d", ""),
    ],
    ids=["utf-8", "invalid-bytes", "encoded-slash-and-space", "sub-delimiters"],
)
def test_parameters_and_query_are_percent_encoded(
    gateway: Gateway, mock: Mock, raw_path: bytes, sent_path: str, sent_query: str
) -> None:
    mock.clear()
    answer = gateway.raw_get(raw_path)
    assert answer.split(b" ", 2)[1] in (b"400", b"404"), answer  # the mock's verdict, relayed
    sent = _last(mock, sent_path)
    assert sent["query"] == sent_query
