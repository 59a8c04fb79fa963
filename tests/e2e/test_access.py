"""API keys with RBAC: every role x endpoint kind x agent scope x expiry x enabled that matters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import standard_gateway
from tests.support import CLIENT_TOKEN, Gateway, Mock

TOKENS = {
    "admin-key": "tok-admin-key-0000000001",
    "user-any": "tok-user-any-00000000002",
    "user-fast": "tok-user-fast-0000000003",
    "reader": "tok-reader-0000000000004",
    "chat-only": "tok-chat-only-0000000005",
    "models-glob": "tok-models-glob-00000006",
    "disabled": "tok-disabled-00000000007",
    "expired": "tok-expired-000000000008",
    "future": "tok-future-0000000000009",
    "hashed": "tok-hashed-0000000000010",
    "user-embed": "tok-user-embed-000000011",
}
SECRETS = f"""
client_token: {CLIENT_TOKEN}
api_keys:
  admin-key: {{token: {TOKENS['admin-key']}, roles: [admin]}}
  user-any: {{token: {TOKENS['user-any']}, roles: [user]}}
  user-fast: {{token: {TOKENS['user-fast']}, roles: [user], allowed_agents: [fast]}}
  reader: {{token: {TOKENS['reader']}, roles: [read-only]}}
  chat-only: {{token: {TOKENS['chat-only']}, roles: [user], allowed_endpoints: ["POST /v1/chat/completions"]}}
  models-glob: {{token: {TOKENS['models-glob']}, roles: [user], allowed_endpoints: ["GET /v1/models*", "* /v1/files/{{id}}"]}}
  disabled: {{token: {TOKENS['disabled']}, roles: [user], enabled: false}}
  expired: {{token: {TOKENS['expired']}, roles: [user], expires_at: 2020-01-01T00:00:00Z}}
  future: {{token: {TOKENS['future']}, roles: [user], expires_at: 2099-01-01T00:00:00Z}}
  hashed: {{token_sha256: {hashlib.sha256(TOKENS['hashed'].encode()).hexdigest()}, roles: [user]}}
  user-embed: {{token: {TOKENS['user-embed']}, roles: [user],
               allowed_agents: [fast, text-embedding-3-small, mock/gpt-4o-mini]}}
"""

CHAT_FAST = ("POST", "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": "x"}]})
CHAT_DIRECT = ("POST", "/v1/chat/completions", {"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
MESSAGES = ("POST", "/v1/messages", {"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
MODELS = ("GET", "/v1/models", None)
ONE_MODEL = ("GET", "/v1/models/fast", None)
EMBED = ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"})
EMBED_DIRECT = ("POST", "/v1/embeddings", {"model": "mock/text-embedding-3-small", "input": "x"})
RESPONSES = ("POST", "/v1/responses", {"model": "gpt-4o", "input": "x"})
RESPONSES_DIRECT = ("POST", "/v1/responses", {"model": "mock/gpt-4o-mini", "input": "x"})
RESPONSES_ODD = ("POST", "/v1/responses", {"model": 5, "input": "x"})
STATS = ("GET", "/statsz", None)
FILE = ("GET", "/v1/files/file-missing", None)
PROXY = ("GET", "/proxy/mock/models", None)
HEALTH = ("GET", "/healthz", None)
DEBUG = ("GET", "/debug/stacks", None)

CASES = [
    # key, request, expected status
    ("admin-key", CHAT_FAST, 200), ("admin-key", CHAT_DIRECT, 200), ("admin-key", PROXY, 200),
    ("admin-key", EMBED, 200), ("admin-key", MODELS, 200),
    (None, PROXY, 200),  # the client_token is admin
    ("user-any", CHAT_FAST, 200), ("user-any", CHAT_DIRECT, 200), ("user-any", MESSAGES, 200),
    ("user-any", EMBED, 200), ("user-any", MODELS, 200),
    ("user-any", PROXY, 403),  # passthrough is an admin route
    ("user-fast", CHAT_FAST, 200), ("user-fast", MESSAGES, 200),
    ("user-fast", CHAT_DIRECT, 403),  # agent scope: no direct provider/model
    # agent scope applies to forward routes too: the body's model, exactly as listed
    ("user-fast", EMBED, 403), ("user-fast", RESPONSES, 403), ("user-fast", RESPONSES_ODD, 403),
    ("user-fast", FILE, 404),  # no model in the request: not model-scoped
    ("user-any", RESPONSES_ODD, 200),  # unscoped keys: the provider judges the body
    ("user-embed", EMBED, 200), ("user-embed", EMBED_DIRECT, 403), ("user-embed", RESPONSES, 403),
    ("user-embed", RESPONSES_DIRECT, 200), ("user-embed", CHAT_DIRECT, 200), ("user-embed", CHAT_FAST, 200),
    ("admin-key", STATS, 200), ("user-any", STATS, 403), ("reader", STATS, 403), ("missing", STATS, 401),
    ("reader", MODELS, 200), ("reader", ONE_MODEL, 200), ("reader", FILE, 404),
    ("reader", CHAT_FAST, 403), ("reader", EMBED, 403), ("reader", PROXY, 403),
    ("chat-only", CHAT_FAST, 200), ("chat-only", MODELS, 403), ("chat-only", EMBED, 403),
    ("models-glob", MODELS, 200), ("models-glob", ONE_MODEL, 200), ("models-glob", FILE, 404),
    ("models-glob", CHAT_FAST, 403),
    ("disabled", CHAT_FAST, 401), ("disabled", MODELS, 401),
    ("expired", CHAT_FAST, 401), ("expired", MODELS, 401),
    ("future", CHAT_FAST, 200),
    ("hashed", CHAT_FAST, 200), ("hashed", MODELS, 200),
    ("unknown", CHAT_FAST, 401), ("unknown", MESSAGES, 401), ("unknown", PROXY, 401),
    ("missing", CHAT_FAST, 401), ("missing", MODELS, 401),
    ("unknown", HEALTH, 200), ("missing", HEALTH, 200),  # open routes stay open
    ("user-any", DEBUG, 403), ("reader", DEBUG, 403), ("unknown", DEBUG, 401),
    ("admin-key", DEBUG, 404),  # admin may, but profiling is off in this configuration
]


@pytest.fixture(scope="module")
def rbac_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = standard_gateway(mock, tmp_path_factory.mktemp("rbac"), secrets=SECRETS)
    yield gateway
    gateway.stop()


def _call(gateway: Gateway, key: str | None, request: tuple) -> tuple[int, dict]:
    method, path, body = request
    if key == "missing":
        headers = {"Authorization": None}
    elif key == "unknown":
        headers = {"Authorization": "Bearer tok-nobody-00000000000"}
    else:
        headers = {"Authorization": f"Bearer {TOKENS[key] if key else CLIENT_TOKEN}"}
    status, _, answer = gateway.request(method, path, json.dumps(body).encode() if body else None, headers)
    return status, (json.loads(answer) if answer.startswith(b"{") else {})


@pytest.mark.parametrize(("key", "request_", "expected"), CASES,
                         ids=[f"{k}-{r[0]}-{r[1]}-{r[2]['model'] if r[2] and 'model' in r[2] else ''}-{s}"
                              for k, r, s in CASES])
def test_key_matrix(rbac_gateway: Gateway, key: str | None, request_: tuple, expected: int) -> None:
    status, answer = _call(rbac_gateway, key, request_)
    assert status == expected, answer
    if status in (401, 403):
        if request_[1] == "/v1/messages":
            assert answer["type"] == "error" and answer["error"]["type"] in ("authentication_error", "permission_error")
        else:
            assert answer["error"]["type"] in ("authentication_error", "permission_error")


def test_denials_are_counted_by_reason_never_by_token(rbac_gateway: Gateway) -> None:
    for key, request_ in (("expired", MODELS), ("reader", CHAT_FAST), ("user-fast", CHAT_DIRECT)):
        _call(rbac_gateway, key, request_)
    text = rbac_gateway.metrics()
    for reason in ("expired", "read_only", "agent_not_allowed"):
        assert f'gateway_auth_denied_total{{reason="{reason}"}}' in text
    assert not any(token in text for token in TOKENS.values()) and CLIENT_TOKEN not in text


def test_usage_is_recorded_per_key_name(rbac_gateway: Gateway) -> None:
    _call(rbac_gateway, "user-any", CHAT_FAST)
    keys = json.loads(rbac_gateway.get("/statsz")[2])["keys"]
    assert keys["user-any"]["requests"] >= 1 and keys["user-any"]["output_tokens"] > 0


def test_keys_reload_with_sighup(rbac_gateway: Gateway) -> None:
    import signal
    import time

    secrets = rbac_gateway.config.parent / "secrets.yaml"
    original = secrets.read_text()
    secrets.write_text(original.replace("enabled: false", "enabled: true"))
    try:
        rbac_gateway.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while _call(rbac_gateway, "disabled", MODELS)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _call(rbac_gateway, "disabled", MODELS)[0] == 200
    finally:
        secrets.write_text(original)
        rbac_gateway.signal(signal.SIGHUP)


@pytest.mark.parametrize("body", [
    b'{"model": "text-embedding-3-small", "input": "x", "model": "gpt-4o"}',  # the last one counts
    b' \n {"model": "gpt-4o", "input": "x"}',  # whitespace before the object
])
def test_forward_model_scope_cannot_be_dodged(rbac_gateway: Gateway, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['user-embed']}"}
    status, _, answer = rbac_gateway.request("POST", "/v1/embeddings", body, headers)
    assert status == 403 and json.loads(answer)["error"]["code"] == "agent_not_allowed"


def test_forward_sends_the_model_it_checked(rbac_gateway: Gateway, mock: Mock) -> None:
    """With two `model` keys, the provider gets exactly the one the scope was checked against."""
    mock.clear()
    body = b'{"model": "gpt-4o", "input": "x", "model": "text-embedding-3-small"}'
    headers = {"Authorization": f"Bearer {TOKENS['user-embed']}"}
    status, _, answer = rbac_gateway.request("POST", "/v1/embeddings", body, headers)
    assert status == 200, answer
    sent = [r for r in mock.requests() if r["path"] == "/v1/embeddings"][-1]
    assert json.loads(sent["body"]) == {"model": "text-embedding-3-small", "input": "x"}


def test_a_scoped_key_with_a_deeply_nested_body_gets_400(rbac_gateway: Gateway) -> None:
    """The checked document is what is sent on: one orjson reads but cannot write is a 400."""
    body = b'{"model": "text-embedding-3-small", "input": ' + b"[" * 300 + b"]" * 300 + b"}"
    headers = {"Authorization": f"Bearer {TOKENS['user-embed']}"}
    status, _, answer = rbac_gateway.request("POST", "/v1/embeddings", body, headers)
    assert status == 400, answer
    assert "Traceback" not in rbac_gateway.log()
