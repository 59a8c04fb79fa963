"""Reload on SIGHUP, drain on SIGTERM, and the systemd notifications around both."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import standard_gateway
from tests.support import Gateway, Mock

MESSAGES = [{"role": "user", "content": "hi there"}]


def _wait_for(predicate, timeout: float = 5.0) -> bool:  # noqa: ANN001 - any callable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sighup_keeps_open_streams_and_switches_new_requests(fresh_gateway: Gateway) -> None:
    client = fresh_gateway.openai()
    stream = client.chat.completions.create(model="mock/gpt-delay-100", messages=MESSAGES, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    routes = fresh_gateway.config.read_text().replace(
        "fast: {models: [mock/gpt-4o-mini]}", "fast: {models: [mock/gpt-4o]}"
    )
    fresh_gateway.config.write_text(routes)
    fresh_gateway.signal(signal.SIGHUP)
    assert _wait_for(lambda: "configuration reloaded" in fresh_gateway.log())
    rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "Hello from mock gpt-delay-100! You said: hi there"
    answer = client.chat.completions.create(model="fast", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o!")
    assert 'gateway_config_reloads_total{result="success"} 1.0' in fresh_gateway.metrics()


def test_sighup_with_a_broken_file_keeps_the_old_table(fresh_gateway: Gateway) -> None:
    fresh_gateway.config.write_text(
        fresh_gateway.config.read_text().replace("handler: chat", "handler: chatt")
    )
    fresh_gateway.signal(signal.SIGHUP)
    assert _wait_for(lambda: "reload rejected" in fresh_gateway.log())
    assert f"{fresh_gateway.config}:" in fresh_gateway.log()
    assert "routes[0].handler" in fresh_gateway.log()
    answer = fresh_gateway.openai().chat.completions.create(model="fast", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o-mini!")
    assert 'gateway_config_reloads_total{result="failure"} 1.0' in fresh_gateway.metrics()


def test_sighup_with_the_secrets_file_gone_keeps_the_old_keys(fresh_gateway: Gateway) -> None:
    (fresh_gateway.config.parent / "secrets.yaml").unlink()
    fresh_gateway.signal(signal.SIGHUP)
    assert _wait_for(lambda: "reload rejected" in fresh_gateway.log())
    assert "secrets file" in fresh_gateway.log() and "not found" in fresh_gateway.log()
    answer = fresh_gateway.openai().chat.completions.create(model="fast", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o-mini!")
    assert 'gateway_config_reloads_total{result="failure"} 1.0' in fresh_gateway.metrics()


def test_sigterm_drains_in_flight_streams_then_exits_zero(fresh_gateway: Gateway) -> None:
    stream = fresh_gateway.openai().chat.completions.create(
        model="mock/gpt-delay-100", messages=MESSAGES, stream=True
    )
    chunks = iter(stream)
    first = next(chunks)
    fresh_gateway.signal(signal.SIGTERM)
    assert _wait_for(lambda: "draining" in fresh_gateway.log())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fresh_gateway.port), timeout=1).close()
    rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "Hello from mock gpt-delay-100! You said: hi there"
    assert fresh_gateway.proc.wait(10) == 0


def test_sigterm_writes_the_access_lines_still_waiting_for_their_batch(fresh_gateway: Gateway) -> None:
    """Access lines wait up to 10 ms to be written together: a stop right after a request
    still writes its line."""
    status, _, _ = fresh_gateway.get("/healthz", {"x-request-id": "the-last-before-stop"})
    assert status == 200
    fresh_gateway.signal(signal.SIGTERM)
    assert fresh_gateway.proc.wait(10) == 0
    assert '"request_id":"the-last-before-stop"' in fresh_gateway.log()


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    directory = tempfile.mkdtemp(prefix="sd-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def _messages(sock: socket.socket, until: str) -> list[dict[str, str]]:
    got = []
    while True:
        fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        got.append(fields)
        if until in fields:
            return got


def test_systemd_notifications(mock: Mock, tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    gateway = standard_gateway(mock, tmp_path, env={"NOTIFY_SOCKET": path})
    try:
        assert _messages(sock, "READY")[-1]["READY"] == "1"
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        gateway.signal(signal.SIGHUP)
        reloading = _messages(sock, "RELOADING")[-1]
        assert reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= before + 10_000_000
        assert _messages(sock, "READY")[-1]["READY"] == "1"
        gateway.signal(signal.SIGTERM)
        assert _messages(sock, "STOPPING")[-1]["STOPPING"] == "1"
        assert gateway.proc.wait(10) == 0
    finally:
        gateway.stop()
