"""The request log and the ``/_mock`` control API, the CLI flags that shape them, and the
application in process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import openai
import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from mock_provider import MODEL_IDS, make_app
from mock_provider.tests.helpers import MSGS, Mock


def test_disconnect_mid_stream_recorded(mock: Mock) -> None:
    mock.clear()
    stream = mock.openai().chat.completions.create(
        model="gpt-delay-200", messages=MSGS, stream=True)
    it = iter(stream)
    next(it)
    next(it)
    stream.close()
    for _ in range(50):
        log = mock.requests()
        if log and log[0]["disconnected"]:
            break
        time.sleep(0.05)
    assert log[0]["disconnected"] is True and log[0]["finished"] is False


def test_request_log(mock: Mock) -> None:
    mock.clear()
    mock.openai().chat.completions.create(model="gpt-4o", messages=MSGS)
    mock.anthropic().messages.create(model="c", max_tokens=5, messages=MSGS)
    mock.raw("/v1/messages?x=1", b"\xff\xfe not json", {"x-api-key": "prov-key"})
    log = mock.requests()
    assert [e["path"] for e in log] == ["/v1/chat/completions", "/v1/messages", "/v1/messages"]
    assert [e["id"] for e in log] == sorted(e["id"] for e in log)
    first = log[0]
    assert first["method"] == "POST" and first["finished"] and not first["disconnected"]
    assert first["headers"]["authorization"] == "Bearer sk-oai"
    assert json.loads(first["body"])["model"] == "gpt-4o"
    assert log[1]["headers"]["authorization"] == "Bearer sk-ant"
    assert log[2]["headers"]["x-api-key"] == "prov-key" and log[2]["query"] == "x=1"
    assert "body" not in log[2] and log[2]["body_b64"] == "//4gbm90IGpzb24="
    assert log[2]["status"] == 400
    assert all(isinstance(e["started"], float) for e in log)
    mock.clear()
    assert mock.requests() == []


def test_errors_for_bad_requests(mock: Mock) -> None:
    resp, body = mock.raw("/v1/nope", {"a": 1})
    assert resp.status == 404 and json.loads(body)["error"]["type"] == "invalid_request_error"
    resp, body = mock.raw("/v1/chat/completions", b"{not json")
    assert resp.status == 400 and "error" in json.loads(body)
    resp, body = mock.raw("/v1/messages", b"[1, 2]")
    assert resp.status == 400 and json.loads(body)["type"] == "error"
    resp, body = mock.raw("/_mock/health", None)
    assert (resp.status, body) == (200, b"OK")


def test_no_log_flag() -> None:
    m = Mock("--no-log", "--delay-ms", "1")
    try:
        m.openai().chat.completions.create(model="x", messages=MSGS)
        assert m.requests() == []
    finally:
        m.stop()


def test_make_app_in_process_and_bounded_log() -> None:
    async def run() -> None:
        app = make_app(log_limit=3)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            for i in range(5):
                body = json.dumps({"model": "m", "messages": [{"role": "user", "content": str(i)}]})
                r = await client.fetch(f"http://127.0.0.1:{port}/v1/chat/completions",
                                       method="POST", body=body)
                assert json.loads(r.body)["choices"][0]["message"]["content"].endswith(str(i))
            r = await client.fetch(f"http://127.0.0.1:{port}/_mock/requests")
            assert [json.loads(e["body"])["messages"][0]["content"]
                    for e in json.loads(r.body)] == ["2", "3", "4"]
        finally:
            server.stop()

    asyncio.run(run())


def test_models_catalog_config(mock: Mock) -> None:
    client = mock.openai()
    try:
        assert mock.config() == {"models_fault": None, "models": list(MODEL_IDS)}
        assert mock.config(models=["a", "b"])["models"] == ["a", "b"]
        assert [m.id for m in client.models.list()] == ["a", "b"]
        mock.config(models_fault="500")
        with pytest.raises(openai.InternalServerError):
            client.models.list()
        assert client.models.retrieve("a").id == "a"  # only the catalog listing is affected
        mock.config(models_fault=503)
        resp, body = mock.raw("/v1/models", None)
        assert resp.status == 503 and json.loads(body)["error"]["type"] == "service_unavailable_error"
        mock.config(models_fault="slow-300")
        t0 = time.monotonic()
        assert [m.id for m in client.models.list()] == ["a", "b"]
        assert time.monotonic() - t0 >= 0.3
        mock.config(models_fault="hang")
        with pytest.raises(openai.APITimeoutError):
            mock.openai(timeout=0.3).models.list()
        for bad in ({"models_fault": "bogus"}, {"models_fault": "600"}, {"models": "a"},
                    {"models": [1]}, {"other": 1}):
            resp, _ = mock.raw("/_mock/config", bad)
            assert resp.status == 400, bad
        assert mock.config(models_fault=None) == {"models_fault": None, "models": ["a", "b"]}
        assert mock.config(models=None)["models"] == list(MODEL_IDS)
    finally:
        mock.call("DELETE", "/_mock/config")
    assert mock.config() == {"models_fault": None, "models": list(MODEL_IDS)}


def test_request_log_large_bodies_hashed(mock: Mock) -> None:
    mock.clear()
    small = json.dumps({"model": "m", "input": "x"}).encode()
    limit = json.dumps({"model": "m", "input": "w" * (65536 - 27)}).encode()
    big = json.dumps({"model": "m", "input": "word " * 20000}).encode()
    assert len(limit) == 65536
    for body in (small, limit, big):
        resp, _ = mock.raw("/v1/embeddings", body, {"Content-Type": "application/json"})
        assert resp.status == 200
    log = mock.requests()
    assert [e["body_size"] for e in log] == [len(small), len(limit), len(big)]
    assert log[0]["body"] == small.decode() and log[1]["body"] == limit.decode()
    assert "body_sha256" not in log[1]
    assert "body" not in log[2] and log[2]["body_sha256"] == hashlib.sha256(big).hexdigest()


def test_two_apps_share_no_state() -> None:
    """Ids, stores and the request log belong to one application (its MockState), not the module."""

    async def run() -> None:
        client = tornado.httpclient.AsyncHTTPClient()
        servers = []
        try:
            for _ in range(2):
                sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
                server = tornado.httpserver.HTTPServer(make_app())
                server.add_sockets(sockets)
                servers.append(server)
                url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
                r = await client.fetch(f"{url}/v1/chat/completions", method="POST",
                                       body=json.dumps({"model": "m", "messages": MSGS}))
                assert (json.loads(r.body)["id"], r.headers["x-request-id"]) == ("chatcmpl-mock1", "req_mock_1")
                r = await client.fetch(f"{url}/_mock/requests")
                assert len(json.loads(r.body)) == 1
        finally:
            for server in servers:
                server.stop()

    asyncio.run(run())
