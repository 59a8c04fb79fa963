"""The OpenAI extension endpoints (embeddings, images, audio, moderations, rerank, responses,
a2a, files, batches, models), through the SDKs where one covers them."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time

import openai
import pytest

from mock_provider import embedding_vector, image_png, speech_bytes
from mock_provider.tests.helpers import COOKIE, MSGS, Mock, chunked_post, multipart, sse_events


def test_v1_request_id_and_cookie_headers(mock: Mock) -> None:
    mock.clear()
    seen = []
    for path, body in [("/v1/chat/completions", {"model": "m", "messages": MSGS}),
                       ("/v1/models", None), ("/v1/nope", {"a": 1}),
                       ("/v1/embeddings", {"model": "e-fault-429", "input": "x"})]:
        resp, _ = mock.raw(path, body)
        rid = resp.getheader("x-request-id")
        assert re.fullmatch(r"req_mock_\d+", rid or ""), (path, rid)
        assert resp.getheader("Set-Cookie") == COOKIE
        seen.append(rid)
    assert len(set(seen)) == 4
    assert [e["request_id"] for e in mock.requests()] == seen
    resp, _ = mock.raw("/_mock/health", None)
    assert resp.getheader("x-request-id") is None and resp.getheader("Set-Cookie") is None


def test_embeddings(mock: Mock) -> None:
    mock.clear()
    client = mock.openai()
    r = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "x"])
    assert json.loads(mock.requests()[-1]["body"])["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in r.data] == [embedding_vector("hello world"), embedding_vector("x")]
    assert [(d.index, d.object) for d in r.data] == [(0, "embedding"), (1, "embedding")]
    assert (r.object, r.model, r.usage.prompt_tokens, r.usage.total_tokens) == (
        "list", "text-embedding-3-small", 3, 3)
    f = client.embeddings.create(model="m", input="hello world", encoding_format="float")
    assert f.data[0].embedding == embedding_vector("hello world") and len(f.data[0].embedding) == 8
    _, body = mock.raw("/v1/embeddings", {"model": "m", "input": "hello world", "encoding_format": "float"})
    assert json.loads(body)["data"][0]["embedding"] == embedding_vector("hello world")
    _, body = mock.raw("/v1/embeddings", {"model": "m", "input": "hello world", "encoding_format": "base64"})
    b64 = json.loads(body)["data"][0]["embedding"]
    assert list(memoryview(base64.b64decode(b64)).cast("f")) == embedding_vector("hello world")
    t = client.embeddings.create(model="m", input=[[1, 2, 3], [4]], dimensions=16)
    assert [d.embedding for d in t.data] == [embedding_vector([1, 2, 3], 16), embedding_vector([4], 16)]
    assert t.usage.prompt_tokens == 4
    assert client.embeddings.create(model="m", input=[5, 6]).data[0].embedding == embedding_vector([5, 6])
    for bad in ({"model": "m", "input": 5}, {"model": "m", "input": []},
                {"model": "m", "input": "x", "encoding_format": "hex"}):
        resp, body = mock.raw("/v1/embeddings", bad)
        assert resp.status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_images_generate(mock: Mock) -> None:
    client = mock.openai()
    r = client.images.generate(model="gpt-image-1", prompt="a red cat", n=2)
    assert r.data is not None and r.created
    pngs = [base64.b64decode(d.b64_json or "") for d in r.data]
    assert pngs == [image_png("a red cat", 0), image_png("a red cat", 1)] and pngs[0] != pngs[1]
    assert pngs[0].startswith(b"\x89PNG\r\n\x1a\n") and pngs[0].endswith(b"IEND\xaeB`\x82")
    assert r.usage is not None and r.usage.input_tokens == 3
    u = client.images.generate(model="dall-e-3", prompt="a red cat", response_format="url")
    assert u.data is not None and len(u.data) == 1
    assert (u.data[0].url or "").startswith("https://") and u.data[0].b64_json is None
    resp, _ = mock.raw("/v1/images/generations", {"prompt": "x", "n": 11})
    assert resp.status == 400


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SDK marks translations deprecated
def test_audio_transcription_echoes_upload(mock: Mock) -> None:
    mock.clear()
    client = mock.openai()
    data = random.Random(7).randbytes(1 << 20)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", data, "audio/wav"), language="en",
        timestamp_granularities=["word", "segment"], response_format="verbose_json")
    r = raw.parse()
    x = r.model_extra["x_mock"]  # type: ignore[index]
    assert r.text == "transcribed 1048576 bytes"
    assert (x["file_sha256"], x["file_bytes"]) == (hashlib.sha256(data).hexdigest(), 1 << 20)
    assert (x["filename"], x["file_content_type"]) == ("clip.wav", "audio/wav")
    assert x["fields"] == {"model": "whisper-1", "language": "en", "response_format": "verbose_json",
                           "timestamp_granularities[]": ["word", "segment"]}
    assert raw.headers["x-mock-file-sha256"] == x["file_sha256"]
    assert raw.headers["x-mock-file-bytes"] == str(1 << 20)
    entry = mock.requests()[-1]
    assert entry["headers"]["content-type"] == x["content_type"] == (
        f"multipart/form-data; boundary={x['boundary']}")
    assert entry["body_size"] == x["body_bytes"] > 1 << 20
    assert "body" not in entry and len(entry["body_sha256"]) == 64
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"),
                                              response_format="text")
    assert text == "transcribed 3 bytes\n"
    tr = client.audio.translations.create(model="whisper-1", file=("a.mp3", b"abcd"))
    assert tr.text == "translated 4 bytes"


def test_audio_upload_hand_built_and_large(mock: Mock) -> None:
    """Quoted boundaries survive, and bodies past Tornado's 100 MB default are accepted."""
    body, headers = multipart({"model": "whisper-1"}, "q.wav", b"hello")
    headers["Content-Type"] = 'multipart/form-data; boundary="mockBoundary7MA4YWxkTrZu0gW"'
    resp, out = mock.raw("/v1/audio/transcriptions", body, headers)
    x = json.loads(out)["x_mock"]
    assert resp.status == 200 and x["boundary"] == "mockBoundary7MA4YWxkTrZu0gW"
    assert x["fields"] == {"model": "whisper-1"} and x["file_bytes"] == 5
    big = b"\x00\x01\x02\x03" * (28 << 20)  # 112 MiB
    body, headers = multipart({"model": "whisper-1"}, "big.wav", big)
    resp, out = mock.raw("/v1/audio/transcriptions", body, headers)
    assert resp.status == 200, out[:200]
    assert json.loads(out)["x_mock"]["file_sha256"] == hashlib.sha256(big).hexdigest()
    resp, out = mock.raw("/v1/audio/transcriptions", {"model": "whisper-1"})
    assert resp.status == 400
    mock.clear()
    resp, out = mock.raw("/v1/audio/transcriptions", b"garbage",
                         {"Content-Type": "multipart/form-data; boundary=zz"})
    assert resp.status == 400 and "no final boundary" in json.loads(out)["error"]["message"]
    assert [(e["path"], e["status"], e["body"]) for e in mock.requests()] == [
        ("/v1/audio/transcriptions", 400, "garbage")]


def test_audio_speech(mock: Mock) -> None:
    client = mock.openai()
    r = client.audio.speech.create(model="tts-1", input="hello there", voice="alloy")
    assert r.content == speech_bytes("hello there", "alloy", 512 * 1024)
    assert r.response.headers["content-type"] == "audio/mpeg"
    assert r.response.headers["transfer-encoding"] == "chunked"
    for fmt, ctype in [("wav", "audio/wav"), ("opus", "audio/opus"), ("aac", "audio/aac"),
                       ("flac", "audio/flac"), ("pcm", "audio/pcm")]:
        r = client.audio.speech.create(model="tts-1", input="x y", voice="nova", response_format=fmt,  # type: ignore[arg-type]
                                       extra_body={"x_mock_bytes": 1000})
        assert r.content == speech_bytes("x y", "nova", 1000)
        assert r.response.headers["content-type"] == ctype
    head, sizes, body = chunked_post(mock.port, "/v1/audio/speech",
                                      {"model": "tts-1", "input": "hi", "voice": "echo"})
    assert "Transfer-Encoding: chunked" in head and sizes == [64 * 1024] * 8
    assert body == speech_bytes("hi", "echo", 512 * 1024)
    sse = client.audio.speech.create(model="gpt-4o-mini-tts", input="hi", voice="echo",
                                     stream_format="sse", extra_body={"x_mock_bytes": 100_000})
    events = [json.loads(d) for n, d in sse_events(sse.content)]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 2 + ["speech.audio.done"]
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == speech_bytes("hi", "echo", 100_000)
    resp, _ = mock.raw("/v1/audio/speech", {"model": "tts-1", "input": "x", "voice": "a",
                                            "response_format": "ogg"})
    assert resp.status == 400


def test_moderations(mock: Mock) -> None:
    client = mock.openai()
    r = client.moderations.create(model="omni-moderation-latest", input=["I will harm you", "hello"])
    assert r.id.startswith("modr-") and r.model == "omni-moderation-latest"
    assert [x.flagged for x in r.results] == [True, False]
    cats, scores = r.results[0].categories, r.results[0].category_scores
    assert cats.harassment and cats.self_harm and not cats.hate and not cats.violence
    assert (scores.harassment, scores.hate) == (0.99, 0.001)
    assert not any(r.results[1].categories.model_dump().values())
    mm = client.moderations.create(input=[{"type": "text", "text": "harmful"},
                                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    assert [x.flagged for x in mm.results] == [True]


def test_rerank(mock: Mock) -> None:
    docs = ["a blue whale", "the red fox", "red fox jumps high", {"text": "jumps!"}]
    resp, body = mock.raw("/v1/rerank", {"model": "rerank-v3.5", "query": "Red fox jumps",
                                         "documents": docs, "top_n": 3, "return_documents": True})
    out = json.loads(body)
    assert resp.status == 200 and out["id"].startswith("rerank-") and out["model"] == "rerank-v3.5"
    assert [(r["index"], r["relevance_score"]) for r in out["results"]] == [(2, 1.0), (1, 2 / 3), (3, 1 / 3)]
    assert [r["document"]["text"] for r in out["results"]] == [
        "red fox jumps high", "the red fox", "jumps!"]
    assert out["meta"]["billed_units"]["search_units"] == 1 and out["usage"]["total_tokens"] == 3 + 11
    _, body = mock.raw("/v1/rerank", {"model": "r", "query": "fox", "documents": docs})
    results = json.loads(body)["results"]
    assert [r["index"] for r in results] == [1, 2, 0, 3] and all("document" not in r for r in results)
    resp, _ = mock.raw("/v1/rerank", {"model": "r", "query": "fox", "documents": [1]})
    assert resp.status == 400
    resp, _ = mock.raw("/v1/rerank", {"model": "r-fault-429", "query": "fox", "documents": ["a"]})
    assert resp.status == 429 and resp.getheader("Retry-After") == "1"


def test_a2a_json_rpc_echo(mock: Mock) -> None:
    params = {"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}]}}
    resp, body = mock.raw("/v1/a2a", {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": params})
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"jsonrpc": "2.0", "id": 7,
                                "result": {"method": "message/send", "params": params}}
    resp, body = mock.raw("/v1/a2a", {"jsonrpc": "2.0", "method": "notify"})
    assert (resp.status, body) == (204, b"")
    _, body = mock.raw("/v1/a2a", b"{nope")
    assert json.loads(body)["error"]["code"] == -32700
    _, body = mock.raw("/v1/a2a", {"id": "x", "method": "m"})
    assert json.loads(body) == {"jsonrpc": "2.0", "id": "x",
                                "error": {"code": -32600, "message": "Invalid Request"}}
    _, body = mock.call("POST", "/v1/a2a", [{"jsonrpc": "2.0", "id": 1, "method": "a"},
                                            {"jsonrpc": "2.0", "method": "b"}])
    assert json.loads(body) == [{"jsonrpc": "2.0", "id": 1, "result": {"method": "a", "params": None}}]


def test_responses_create_retrieve_delete(mock: Mock) -> None:
    client = mock.openai()
    r = client.responses.create(model="gpt-4o", input="hello there", instructions="be nice")
    assert (r.object, r.status, r.model) == ("response", "completed", "gpt-4o")
    assert r.id.startswith("resp_") and r.output_text == "Hello from mock gpt-4o! You said: hello there"
    msg = r.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.content[0].type == "output_text"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (4, 8, 12)
    got = client.responses.retrieve(r.id)
    assert (got.id, got.output_text) == (r.id, r.output_text)
    resp, body = mock.call("DELETE", f"/v1/responses/{r.id}")
    assert json.loads(body) == {"id": r.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    r2 = client.responses.create(model="m", input=[{"role": "user", "content": "yo"}])
    assert client.responses.delete(r2.id) is None  # the SDK discards the body
    r3 = client.responses.create(model="m", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r3.id)
    short = client.responses.create(model="m", input="x", max_output_tokens=3)
    assert (short.status, short.output_text) == ("incomplete", "Hello from mock")
    assert short.incomplete_details is not None and short.incomplete_details.reason == "max_output_tokens"


def test_responses_stream(mock: Mock) -> None:
    client = mock.openai()
    events = list(client.responses.create(
        model="gpt-4o", input=[{"role": "user", "content": [{"type": "input_text", "text": "hey you"}]}],
        stream=True))
    assert [e.type for e in events] == (
        ["response.created", "response.in_progress", "response.output_item.added",
         "response.content_part.added"] + ["response.output_text.delta"] * 8
        + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
           "response.completed"])
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from mock gpt-4o! You said: hey you"
    done = events[-1]
    assert done.type == "response.completed" and done.response.status == "completed"
    assert done.response.output_text == text and done.response.usage is not None
    assert client.responses.retrieve(done.response.id).output_text == text
    resp, body = mock.raw("/v1/responses", {"model": "m", "input": "a", "stream": True})
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    for name, data in sse_events(body):
        assert json.loads(data)["type"] == name
    with client.responses.stream(model="gpt-4o-tools", input="x", tools=[
            {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]) as s:
        final = s.get_final_response()
    calls = [(o.name, json.loads(o.arguments)) for o in final.output if o.type == "function_call"]
    assert calls == [("lookup", {"city": "Paris"}), ("lookup", {"tz": "UTC"})]


def test_files_crud(mock: Mock) -> None:
    client = mock.openai()
    content = b'{"custom_id":"a"}\n{"custom_id":"b"}\n'
    f = client.files.create(file=("in.jsonl", content), purpose="batch")
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == (
        "file", len(content), "in.jsonl", "batch", "processed")
    assert f.id.startswith("file-")
    assert f.model_extra["x_mock"]["file_sha256"] == hashlib.sha256(content).hexdigest()  # type: ignore[index]
    g = client.files.create(file=("b.txt", b"x"), purpose="assistants")
    ids = [x.id for x in client.files.list()]
    assert ids.index(g.id) < ids.index(f.id)  # newest first
    assert [x.id for x in client.files.list(order="asc")][-2:] == [f.id, g.id]
    batch_ids = [x.id for x in client.files.list(purpose="batch")]
    assert f.id in batch_ids and g.id not in batch_ids
    page = client.files.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    got = client.files.retrieve(f.id)
    assert (got.id, got.bytes, got.filename) == (f.id, f.bytes, f.filename)
    assert client.files.content(f.id).content == content
    resp, body = mock.raw(f"/v1/files/{f.id}/content", None)
    assert resp.getheader("Content-Type") == "application/octet-stream" and body == content
    d = client.files.delete(f.id)
    assert (d.id, d.deleted, d.object) == (f.id, True, "file")
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as ei:
            call(f.id)
        assert ei.value.response.json()["error"]["type"] == "invalid_request_error"
    resp, _ = mock.raw("/v1/files", *multipart({}, "a.txt", b"x"))
    assert resp.status == 400  # no purpose


def test_batches(mock: Mock) -> None:
    client = mock.openai()
    f = client.files.create(file=("in.jsonl", b"{}\n{}\n{}\n"), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h", metadata={"k": "v"})
    assert (b.object, b.status, b.input_file_id, b.metadata) == ("batch", "validating", f.id, {"k": "v"})
    assert b.request_counts is not None and b.request_counts.total == 3
    assert client.batches.retrieve(b.id).status == "validating"
    assert b.id in [x.id for x in client.batches.list()]
    c = client.batches.cancel(b.id)
    assert c.status == "cancelling" and c.cancelling_at
    r = client.batches.retrieve(b.id)
    assert r.status == "cancelled" and r.cancelled_at
    assert client.batches.cancel(b.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    resp, _ = mock.raw("/v1/batches", {"endpoint": "/v1/chat/completions"})
    assert resp.status == 400


def test_models_retrieve(mock: Mock) -> None:
    m = mock.openai().models.retrieve("gpt-4o-mini")
    assert (m.id, m.object, m.owned_by) == ("gpt-4o-mini", "model", "mock")
    with pytest.raises(openai.NotFoundError):
        mock.openai().models.retrieve("x-fault-404")


def test_extension_endpoint_faults(mock: Mock) -> None:
    client = mock.openai()
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e-fault-429", input="x")
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="i-fault-503", prompt="x")
    with pytest.raises(openai.RateLimitError):  # model read from the multipart form
        client.audio.transcriptions.create(model="w-fault-429", file=("a.wav", b"abc"))
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="t-fault-400", input="x", voice="alloy")
    with pytest.raises(openai.InternalServerError):
        client.moderations.create(model="m-fault-500", input="x")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="r-fault-429", input="x")
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).embeddings.create(model="e-fault-hang", input="x")
    with pytest.raises(openai.APIConnectionError):
        client.audio.speech.create(model="t-fault-cut", input="x", voice="alloy").read()
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="r-fault-cut", input="x", stream=True))
    events = list(client.responses.create(model="r-fault-streamerror", input="x", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    t0 = time.monotonic()
    client.embeddings.create(model="e-delay-200", input="x")
    assert time.monotonic() - t0 >= 0.2
