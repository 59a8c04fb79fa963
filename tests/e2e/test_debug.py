"""/debug/...: CPU profiles (pstats and collapsed) taken while the gateway serves, heap, stacks, and 404 when off."""

from __future__ import annotations

import json
import pstats
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import CLIENT_TOKEN, Gateway, Mock, write_config

ROUTES = """
version: 1
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  drain_timeout: 5s
secrets: secrets.yaml
debug: {profiling_enabled: %(enabled)s}
providers:
  mock:
    url: ${MOCK_URL}/v1
    format: openai
    api_key: sk-test-debug
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
  - match: "GET /debug/{kind*}"
    handler: debug
  - {match: POST /v1/files, handler: forward, body: stream}
"""
SECRETS = f"client_token: {CLIENT_TOKEN}\n"
CHAT = json.dumps(
    {"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "profile me"}]}
).encode()
FOLDED_LINE = re.compile(r"^([^;\n]+(?:;[^;\n]+)*) ([1-9]\d*)$")


def _start(mock: Mock, directory: Path, enabled: bool) -> Gateway:
    config = write_config(directory, ROUTES % {"enabled": str(enabled).lower()}, SECRETS)
    return Gateway(config, env={"MOCK_URL": mock.url})


@pytest.fixture(scope="module")
def debug_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    process = _start(mock, tmp_path_factory.mktemp("debug-on"), True)
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module")
def quiet_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    process = _start(mock, tmp_path_factory.mktemp("debug-off"), False)
    yield process
    process.stop()


@contextmanager
def chat_load(gateway: Gateway, limit: float = 15.0) -> Iterator[list[tuple[float, float, int]]]:
    """Chat requests one after another from a thread, until the block ends (or `limit` s);
    yields the (started, finished, status) of each, filled in as they complete."""
    done: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            status, _, _ = gateway.request("POST", "/v1/chat/completions", CHAT)
            done.append((started, time.monotonic(), status))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)  # the load is under way before the profile starts
        yield done
    finally:
        stop.set()
        thread.join(limit)


def _profile_under_load(gateway: Gateway, query: str) -> tuple[int, dict[str, str], bytes]:
    """Fetch a 1 s profile while chat requests run; check the gateway kept answering them."""
    with chat_load(gateway) as done:
        began = time.monotonic()
        status, headers, body = gateway.get(f"/debug/profile?seconds=1&{query}")
        ended = time.monotonic()
    assert ended - began >= 0.9, "the profile did not last its seconds"
    during = [
        finished for started, finished, code in done if began < started and finished < ended and code == 200
    ]
    assert all(code == 200 for _, _, code in done)
    assert len(during) >= 10, f"only {len(during)} chat answers while profiling"
    assert max(during) - min(during) >= 0.5, "chat answers stalled during the profile"
    return status, headers, body


def test_index_lists_what_is_available(debug_gateway: Gateway) -> None:
    status, headers, body = debug_gateway.get("/debug/")
    assert status == 200 and headers["content-type"] == "application/json"
    index = json.loads(body)
    assert set(index["endpoints"]) == {"/debug/profile", "/debug/heap", "/debug/stacks"}
    assert index["profile_running"] is False and isinstance(index["pid"], int)


def test_pstats_profile_while_serving(debug_gateway: Gateway, tmp_path: Path) -> None:
    status, headers, body = _profile_under_load(debug_gateway, "format=pstats")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert re.fullmatch(
        r'attachment; filename="gateway-\d+-\d{8}T\d{6}Z\.pstats"', headers["content-disposition"]
    )
    dump = tmp_path / "gateway.pstats"
    dump.write_bytes(body)
    stats = pstats.Stats(str(dump))
    functions = stats.stats  # type: ignore[attr-defined]
    assert any(filename.endswith("handlers/chat.py") for filename, _, _ in functions)
    assert any(name == "post" and filename.endswith("handlers/chat.py") for filename, _, name in functions)
    assert stats.total_calls > 1000  # type: ignore[attr-defined]


def test_collapsed_profile_while_serving(debug_gateway: Gateway) -> None:
    status, headers, body = _profile_under_load(debug_gateway, "format=collapsed")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    lines = body.decode().splitlines()
    assert lines, "no samples"
    stacks, counts = [], []
    for line in lines:
        found = FOLDED_LINE.fullmatch(line)
        assert found, line
        stacks.append(found.group(1))
        counts.append(int(found.group(2)))
        assert found.group(1).startswith("<module> (gateway.py:")
    # ~100 Hz for 1 s: idle samples (waiting in select) are counted but left out by default.
    samples, idle = int(headers["x-profile-samples"]), int(headers["x-profile-idle-samples"])
    assert 25 <= samples <= 130 and sum(counts) == samples - idle
    assert not any(re.search(r"[;.]select \(selectors\.py:\d+\)$", stack) for stack in stacks)
    # The serving code is sampled (which of its frames a second's samples catch varies).
    assert re.search(r"\((handlers|upstream|server)/[a-z_]+\.py:\d+\)", body.decode())


def test_one_profile_at_a_time(debug_gateway: Gateway) -> None:
    answers: list[tuple[int, bytes]] = []

    def fetch() -> None:
        status, _, body = debug_gateway.get("/debug/profile?seconds=0.5&format=collapsed")
        answers.append((status, body))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(status for status, _ in answers) == [200, 409]
    refused = next(body for status, body in answers if status == 409)
    assert json.loads(refused)["error"]["code"] == "profile_running"
    assert json.loads(debug_gateway.get("/debug/")[2])["profile_running"] is False


def test_idle_samples_on_request(debug_gateway: Gateway) -> None:
    status, headers, body = debug_gateway.get("/debug/profile?seconds=0.3&format=collapsed&idle=1")
    assert status == 200 and int(headers["x-profile-idle-samples"]) > 0
    # the loop's wait: uvloop waits in C below the frame that runs it (asyncio, in select)
    assert re.search(r"[;.](Runner\.run \(\S*runners\.py|select \(selectors\.py):\d+\) [1-9]\d*$",
                     body.decode(), re.MULTILINE)


def test_profile_ends_when_the_client_leaves(debug_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", debug_gateway.port)) as sock:
        request = f"GET /debug/profile?seconds=30 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n\r\n"
        sock.sendall(request.encode())
        deadline = time.monotonic() + 5
        while not json.loads(debug_gateway.get("/debug/")[2])["profile_running"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    deadline = time.monotonic() + 5
    while json.loads(debug_gateway.get("/debug/")[2])["profile_running"]:
        assert time.monotonic() < deadline, "the profile outlived its client"
        time.sleep(0.02)
    assert debug_gateway.get("/debug/profile?seconds=0.1")[0] == 200


@pytest.mark.parametrize(
    "query",
    [
        "seconds=0",
        "seconds=-1",
        "seconds=61",
        "seconds=abc",
        "seconds=nan",
        "seconds=inf",
        "format=svg",
        "idle=maybe",
    ],
)
def test_bad_profile_arguments(debug_gateway: Gateway, query: str) -> None:
    status, _, body = debug_gateway.get(f"/debug/profile?{query}")
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_heap_starts_tracing_then_reports(debug_gateway: Gateway) -> None:
    debug_gateway.get("/debug/heap?stop=1")
    status, headers, body = debug_gateway.get("/debug/heap")
    first = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert first["tracing_started"] is True and first["top"] == []
    for _ in range(5):
        assert debug_gateway.request("POST", "/v1/chat/completions", CHAT)[0] == 200

    second = json.loads(debug_gateway.get("/debug/heap?top=10")[2])
    assert second["tracing_started"] is False and second["traced_bytes"] > 0
    assert 0 < len(second["top"]) <= 10
    for entry in second["top"]:
        assert (
            re.fullmatch(r".+:\d+", entry["where"]) and entry["where"] == f"{entry['file']}:{entry['line']}"
        )
        assert entry["size"] > 0 and entry["count"] > 0
    assert [e["size"] for e in second["top"]] == sorted((e["size"] for e in second["top"]), reverse=True)

    by_traceback = json.loads(debug_gateway.get("/debug/heap?top=3&group=traceback")[2])
    assert by_traceback["top"] and all(e["traceback"][0] == e["where"] for e in by_traceback["top"])

    assert debug_gateway.get("/debug/heap?top=0")[0] == 400
    assert json.loads(debug_gateway.get("/debug/heap?stop=1")[2]) == {"tracing": False, "stopped": True}
    assert json.loads(debug_gateway.get("/debug/")[2])["heap_tracing"] is False


def test_stacks_show_threads_and_tasks(debug_gateway: Gateway) -> None:
    status, headers, body = debug_gateway.get("/debug/stacks")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    text = body.decode()
    assert re.search(r"^thread MainThread \(ident \d+, event loop\):$", text, re.MULTILINE)
    assert re.search(r"^task \S+: <Task pending name=", text, re.MULTILINE)
    # A suspended task is shown down its await chain, not just its outermost coroutine.
    assert re.search(
        r'server/lifecycle\.py", line \d+, in serve\n.*\n.*asyncio/locks\.py", line \d+, in wait', text
    )


def _task_count(gateway: Gateway) -> int:
    status, _, body = gateway.get("/debug/stacks")
    assert status == 200
    found = re.search(rb" (\d+) asyncio tasks\n", body)
    assert found is not None
    return int(found.group(1))


def test_an_upload_the_client_abandons_leaves_no_task_behind(debug_gateway: Gateway) -> None:
    """A streamed upload whose client leaves mid-body: its handler ends (it waited for the rest
    of the body for ever, one task and handler kept per abandoned upload)."""
    before = _task_count(debug_gateway)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", debug_gateway.port)) as client:
            client.sendall(
                b"POST /v1/files HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + CLIENT_TOKEN.encode()
                + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
                + b"x" * 10_000
            )
            time.sleep(0.2)  # the upstream transfer has begun
    deadline = time.monotonic() + 10
    while (count := _task_count(debug_gateway)) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count <= before


def test_unknown_debug_page_is_404(debug_gateway: Gateway) -> None:
    for path in ("/debug/nothing", "/debug/profile/extra"):
        status, _, body = debug_gateway.get(path)
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/debug/", "/debug/profile", "/debug/heap", "/debug/stacks", "/debug/x"])
def test_disabled_debug_reveals_nothing(quiet_gateway: Gateway, path: str) -> None:
    status, headers, body = quiet_gateway.get(path)
    assert status == 404
    assert json.loads(body) == {
        "error": {
            "message": f"no route for GET {path}",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    }
    # Word for word what a path with no route at all answers.
    unrouted = quiet_gateway.get("/no-such-thing")[2]
    assert json.loads(unrouted)["error"]["message"] == "no route for GET /no-such-thing"
