"""MCP servers through a real gateway: sessions in the background, /statsz and /metrics, reload."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    CLIENT_TOKEN,
    PROVIDER_KEY,
    Gateway,
    McpTestServer,
    Mock,
    free_port,
    metric,
    write_config,
)

MCP_TOKEN = "mcp-test-token-93c1d7e2"
ROUTES = """
version: 1
server: {listen: "127.0.0.1:${GATEWAY_PORT}", drain_timeout: 2s}
secrets: secrets.yaml
mcp_servers:
  tools: {url: "%(tools)s", timeout: 2s}
  down: {url: "http://127.0.0.1:%(closed)d/mcp"}
%(more)s
providers:
  mock: {url: "%(mock)s/v1", api_key: %(key)s}
agents:
  tooled: {models: [mock/gpt-4o-mini], mcp: {servers: [tools, down], max_iterations: 3}}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /statsz, handler: statsz}
  - {match: GET /metrics, handler: metrics}
  - {match: GET /healthz, handler: health}
"""
SECRETS = f"client_token: {CLIENT_TOKEN}\nmcp_servers: {{tools: {{token: {MCP_TOKEN}}}}}\n"


@pytest.fixture(scope="module")
def tools_server() -> Iterator[McpTestServer]:
    server = McpTestServer(token=MCP_TOKEN)
    yield server
    server.stop()


def routes(mock: Mock, tools: McpTestServer, closed: int, more: str = "") -> str:
    return ROUTES % {"tools": tools.url, "closed": closed, "more": more, "mock": mock.url, "key": PROVIDER_KEY}


def statsz(gateway: Gateway) -> dict[str, Any]:
    status, _, body = gateway.get("/statsz")
    assert status == 200
    return json.loads(body)


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return found


def test_statsz_and_metrics_show_each_server_and_a_down_one_blocks_nothing(
    tmp_path: Path, mock: Mock, tools_server: McpTestServer
) -> None:
    config = write_config(tmp_path, routes(mock, tools_server, free_port()), SECRETS)
    gateway = Gateway(config)  # ready although `down` never answers
    try:
        mcp = until(lambda: (s := statsz(gateway)["mcp"])["tools"]["connected"] and s["down"]["last_error"] and s)
        assert list(mcp) == ["tools", "down"]
        tools, down = mcp["tools"], mcp["down"]
        assert tools["protocol_version"] and tools["tools"] == tools["offered"] == 8
        assert (tools["calls"], tools["errors"], tools["last_error"]) == (0, 0, None)
        assert not down["connected"] and down["tools"] == 0 and "ConnectError" in down["last_error"]
        text = gateway.metrics()
        assert metric(text, 'gateway_mcp_servers_up{server="tools"}') == 1.0
        assert metric(text, 'gateway_mcp_servers_up{server="down"}') == 0.0
        # The agent is served while one of its servers is down.
        answer = gateway.openai().chat.completions.create(
            model="tooled", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        assert "MCP server tools connected" in gateway.log()
    finally:
        assert gateway.stop() == 0
    assert MCP_TOKEN not in gateway.log() and "Traceback" not in gateway.log()


def test_reload_connects_new_servers_and_closes_removed_ones(
    tmp_path: Path, mock: Mock, tools_server: McpTestServer
) -> None:
    closed = free_port()
    config = write_config(tmp_path, routes(mock, tools_server, closed), SECRETS)
    gateway = Gateway(config)
    try:
        until(lambda: statsz(gateway)["mcp"]["tools"]["connected"])
        more = f'  more: {{url: "{tools_server.url}"}}'
        config.write_text(routes(mock, tools_server, closed, more).replace("  down: {url", "  # down: {url")
                          .replace("servers: [tools, down]", "servers: [tools, more]"))
        gateway.signal(signal.SIGHUP)
        # more: refused without the token, which the secrets file gives only to tools.
        mcp = until(lambda: (s := statsz(gateway)["mcp"]).get("more", {}).get("last_error") and s)
        assert list(mcp) == ["tools", "more"] and mcp["tools"]["connected"]
        assert "401" in mcp["more"]["last_error"] and MCP_TOKEN not in json.dumps(mcp)
        text = gateway.metrics()
        assert 'gateway_mcp_servers_up{server="down"}' not in text  # removed from the file
        assert metric(text, 'gateway_mcp_servers_up{server="tools"}') == 1.0
    finally:
        assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()


def test_a_server_that_dies_and_comes_back_is_reported_and_reconnected(tmp_path: Path, mock: Mock) -> None:
    dying = McpTestServer()
    text = routes(mock, dying, free_port()).replace(f'{dying.url}", timeout: 2s}}', f'{dying.url}", refresh: 200ms}}')
    assert "refresh: 200ms" in text
    config = write_config(tmp_path, text, f"client_token: {CLIENT_TOKEN}\n")
    gateway = Gateway(config)
    try:
        until(lambda: statsz(gateway)["mcp"]["tools"]["connected"])
        dying.stop()
        lost = until(lambda: (t := statsz(gateway)["mcp"]["tools"])["last_error"] and not t["connected"] and t)
        assert lost["tools"] == 0 and lost["protocol_version"] is None
        assert metric(gateway.metrics(), 'gateway_mcp_servers_up{server="tools"}') == 0.0
        dying.start()
        until(lambda: statsz(gateway)["mcp"]["tools"]["connected"])
        assert metric(gateway.metrics(), 'gateway_mcp_servers_up{server="tools"}') == 1.0
    finally:
        dying.stop()
        assert gateway.stop() == 0
    log = gateway.log()
    assert "Traceback" not in log and "HTTP Request" not in log
    assert "MCP server tools unavailable" in log and log.count("MCP server tools connected") == 2
