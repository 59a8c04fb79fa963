"""Strings a client chooses (model names, request ids, header values, paths) stay bounded and
escaped wherever the gateway writes them: metric labels, /statsz, error messages and the log."""

from __future__ import annotations

import json
import time

import pytest

from tests.support import Gateway, Mock
from tests.unit.test_client_strings import FORGED

CHAT = ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
MESSAGES = ("/v1/messages", {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
EMBEDDINGS = ("/v1/embeddings", {"input": "x"})
ROUTES = [CHAT, MESSAGES, EMBEDDINGS]


def send(gateway: Gateway, path: str, document: dict, model: str) -> tuple[int, dict]:
    status, _, body = gateway.request("POST", path, json.dumps({**document, "model": model}).encode())
    return status, json.loads(body)


@pytest.mark.parametrize(("path", "document"), ROUTES, ids=["chat", "messages", "forward"])
@pytest.mark.parametrize(
    "model",
    ["m" * 257, "mock/" + "x" * 300_000, "mock/gpt-4o-mini\nINFO forged", "fast\x00", "fast\x85", "fast\u2028"],
    ids=["257-chars", "300k", "newline", "nul", "c1", "line-separator"],
)
def test_absurd_model_names_are_refused_in_the_clients_shape(
    gateway: Gateway, mock: Mock, path: str, document: dict, model: str
) -> None:
    mock.clear()
    status, answer = send(gateway, path, document, model)
    assert status == 400, answer
    if path == "/v1/messages":
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
        message = answer["error"]["message"]
    else:
        assert answer["error"]["code"] == "invalid_model"
        message = answer["error"]["message"]
    assert "'model'" in message and len(message) < 200
    assert mock.requests() == [], "nothing reached the provider"


def test_a_model_name_of_256_characters_is_served(gateway: Gateway) -> None:
    status, answer = send(gateway, *EMBEDDINGS, "m" * 256)
    assert status == 200, answer


def test_huge_model_names_leave_metrics_statsz_and_memory_small(fresh_gateway: Gateway) -> None:
    """Forty 256 KiB model names used to stay in /metrics and /statsz (and RSS) for good."""
    name = "x" * (256 * 1024)
    fresh_gateway.metrics()
    fresh_gateway.get("/statsz")
    before = fresh_gateway.memory_kib()
    statuses = set()
    for i in range(40):
        path, document = ROUTES[i % 3]
        statuses.add(send(fresh_gateway, path, document, f"mock/{i}{name}" if i % 3 != 2 else f"{i}{name}")[0])
    metrics_size = len(fresh_gateway.metrics())
    statsz_size = len(fresh_gateway.get("/statsz")[2])
    grown = fresh_gateway.memory_kib() - before
    assert metrics_size < 64 * 1024 and statsz_size < 16 * 1024, (metrics_size, statsz_size)
    assert grown < 6 * 1024, f"RSS grew by {grown} KiB"
    assert statuses == {400}


def _log_lines_after(gateway: Gateway, mark: int) -> list[str]:
    time.sleep(0.2)  # the access log is written in batches, every 10 ms
    return gateway.log()[mark:].splitlines()


def test_a_forged_log_line_in_a_model_name_never_reaches_the_log(gateway: Gateway) -> None:
    """A model name with a newline and a JSON line, on a stream that fails mid-way (which logs a
    WARNING naming the target): refused, and no line of the log is the forged one."""
    mark = len(gateway.log())
    model = f"mock/x\n{FORGED}\n-fault-cut"
    status, answer = send(gateway, "/v1/chat/completions", {**CHAT[1], "stream": True}, model)
    assert status == 400, answer
    status, _, _ = gateway.request(
        "POST", "/v1/chat/completions",
        json.dumps({**CHAT[1], "model": "mock/fault-cut", "stream": True}).encode(),
    )
    lines = _log_lines_after(gateway, mark)
    assert any("WARNING" in line and "mock/fault-cut failed mid-stream" in line for line in lines), lines
    assert not any("forged" in line for line in lines), lines


def test_a_path_with_line_breaking_bytes_stays_on_its_access_log_line(gateway: Gateway) -> None:
    """Raw bytes in the path (a NEL, which str.splitlines() breaks at) are percent-encoded there."""
    mark = len(gateway.log())
    gateway.raw(b"GET /nowhere\x85" + FORGED.replace(" ", "").encode()
                 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    lines = _log_lines_after(gateway, mark)
    assert any('"path":"/nowhere%85%7B' in line for line in lines), lines
    for line in lines:
        assert not line.startswith('{"ts":1,'), line
        if line.startswith("{"):
            json.loads(line)


def test_a_client_request_id_is_kept_only_when_plain(gateway: Gateway, mock: Mock) -> None:
    ok = gateway.request("GET", "/v1/models", headers={"x-request-id": "trace-1.2:3"})[1]
    assert ok["x-request-id"] == "trace-1.2:3"
    for odd in ("x" * 129, 'a"b', "a b"):
        echoed = gateway.request("GET", "/v1/models", headers={"x-request-id": odd})[1]["x-request-id"]
        assert echoed != odd and len(echoed) == 32
