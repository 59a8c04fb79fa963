"""/proxy/{provider}/{path*}: relays any method to a configured provider and nowhere else."""

from __future__ import annotations

import json

import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock


def test_get_is_relayed_with_the_provider_key(gateway: Gateway, mock: Mock) -> None:
    mock.clear()
    status, headers, body = gateway.get(
        "/proxy/mock/models?limit=2", {"Cookie": "session=abc", "Connection": "keep-alive"}
    )
    assert status == 200
    assert any(m["id"] == "gpt-4o-mini" for m in json.loads(body)["data"])
    sent = mock.requests()[-1]
    assert sent["path"] == "/v1/models" and sent["query"] == "limit=2"
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "cookie" not in sent["headers"]
    assert CLIENT_TOKEN not in json.dumps(sent["headers"])
    assert "x-request-id" in headers


def test_post_stream_is_relayed_as_sse(gateway: Gateway) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    status, headers, raw = gateway.request("POST", "/proxy/mock/chat/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert raw.endswith(b"data: [DONE]\n\n")


def test_upstream_status_and_body_pass_through(gateway: Gateway) -> None:
    body = json.dumps({"model": "fault-429", "messages": []}).encode()
    status, headers, raw = gateway.request("POST", "/proxy/mock/chat/completions", body)
    assert status == 429 and headers["retry-after"] == "1"
    assert json.loads(raw)["error"]["type"]


def test_unknown_provider_is_404(gateway: Gateway) -> None:
    status, _, body = gateway.get("/proxy/evil/v1/models")
    assert status == 404 and "evil" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/proxy/mock/../../etc/passwd",
        "/proxy/mock/models/../../admin",
        "/proxy/mock/%2e%2e/%2e%2e/admin",
        "/proxy/mock/%2E%2E/admin",
        "/proxy/mock/.%2e/admin",
        "/proxy/mock/%252e%252e/admin",
        "/proxy/mock/%25252e%25252e/admin",
        "/proxy/mock/..%2fadmin",
        "/proxy/mock/..%252fadmin",
        "/proxy/mock/..\\admin",
        "/proxy/mock/%5c..%5cadmin",
        "/proxy/mock/%255c..%255cadmin",
        "/proxy/mock/http://evil.example/v1",
        "/proxy/mock/http:%2f%2fevil.example/v1",
        "/proxy/mock//evil.example/v1",
        "/proxy/mock/%2f%2fevil.example/v1",
        "/proxy/mock/./models",
        "/proxy/mock/models%00.json",
        "/proxy/mock/models%0d%0aHost:%20evil",
        "/proxy/mock/models#/../admin",
        "/proxy/mock/models%23/x",
        "/proxy/mock/models%3F/x",
        "/proxy/mock/models%2523",
    ],
)
def test_traversal_and_host_switching_are_refused(gateway: Gateway, mock: Mock, path: str) -> None:
    mock.clear()
    status, _, body = gateway.request("GET", path)
    assert status == 400, (path, status, body)
    assert "error" in json.loads(body)
    assert mock.requests() == [], "nothing reached the provider"


def test_passthrough_requires_auth(gateway: Gateway) -> None:
    status, _, _ = gateway.request("GET", "/proxy/mock/models", headers={"Authorization": None})
    assert status == 401


def test_a_provider_quoting_its_key_is_scrubbed(gateway: Gateway) -> None:
    """The mock's 401 quotes the key it got, in a header and in a body whose chunks split it."""
    body = json.dumps({"model": "fault-401", "messages": [{"role": "user", "content": "x"}]}).encode()
    status, headers, raw = gateway.request("POST", "/proxy/mock/chat/completions", body)
    assert status == 401
    assert PROVIDER_KEY not in raw.decode() and PROVIDER_KEY not in json.dumps(headers)
    assert json.loads(raw)["error"]["message"] == "Incorrect API key provided: [redacted]."
    assert headers["www-authenticate"].endswith('error_description="[redacted]"')


@pytest.mark.parametrize(
    ("raw_path", "sent_path", "sent_query"),
    [
        (b"/proxy/mock/models/gpt-\xc3\xa9?q=\xc3\xa9", "/v1/models/gpt-%C3%A9", "q=%C3%A9"),
        (b"/proxy/mock/models/gpt-\xff\xfe?q=\xff%20x#y", "/v1/models/gpt-%FF%FE", "q=%FF%20x%23y"),
        (b"/proxy/mock/models/a%2Fb%C3%A9?q=%C3%A9", "/v1/models/a%2Fb%C3%A9", "q=%C3%A9"),
    ],
    ids=["utf-8", "invalid-bytes", "already-encoded"],
)
def test_raw_non_ascii_bytes_are_percent_encoded(
    gateway: Gateway, mock: Mock, raw_path: bytes, sent_path: str, sent_query: str
) -> None:
    mock.clear()
    answer = gateway.raw_get(raw_path)
    assert answer.split(b" ", 2)[1] in (b"200", b"400"), answer  # the mock's own verdict, relayed
    sent = mock.requests()[-1]
    assert (sent["path"], sent["query"]) == (sent_path, sent_query)
