"""The toolbox's pure parts in process: offered names, tool definitions in both formats,
tool results as a model reads them, and the DSL keys that configure them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp_types import CallToolResult, ImageContent, TextContent

from dsl.compiler import compile_file
from dsl.table import McpLoop
from handlers.registry import HANDLERS
from tests.unit.test_dsl import problems, write
from toolbox.definitions import anthropic_tool, openai_tool, tool_name
from toolbox.naming import MAX_NAME, offered_names
from toolbox.results import arguments_of, from_call

PROVIDER_ACCEPTS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_names_are_server_and_tool_in_the_order_given() -> None:
    names = offered_names([("files", "read"), ("files", "write"), ("web", "get")])
    assert names == {"files__read": ("files", "read"), "files__write": ("files", "write"),
                     "web__get": ("web", "get")}


def test_characters_providers_refuse_become_underscores() -> None:
    assert list(offered_names([("fs", "read.file/v2 é")])) == ["fs__read_file_v2__"]


def test_long_names_are_cut_with_a_stable_hash() -> None:
    tool = "summarise_" + "very_" * 20 + "long"
    first = list(offered_names([("files", tool)]))[0]
    assert len(first) == MAX_NAME and PROVIDER_ACCEPTS.match(first)
    assert first.startswith("files__summarise_very_") and re.search(r"_[0-9a-f]{8}$", first)
    assert list(offered_names([("other", "x"), ("files", tool)]))[1] == first  # same name whatever else is listed
    other = list(offered_names([("files", tool + "2")]))[0]
    assert other != first and other[:-9] == first[:-9]


def test_names_that_would_clash_all_get_a_hash() -> None:
    # a.b and a_b both read a_b; server "a__b" with tool "c" and server "a" with tool "b__c" both read a__b__c.
    names = offered_names([("s", "a.b"), ("s", "a_b"), ("a__b", "c"), ("a", "b__c"), ("s", "plain")])
    assert len(names) == 5 and all(PROVIDER_ACCEPTS.match(name) for name in names)
    assert set(names.values()) == {("s", "a.b"), ("s", "a_b"), ("a__b", "c"), ("a", "b__c"), ("s", "plain")}
    assert "s__plain" in names and "s__a_b" not in names and "a__b__c" not in names


def test_definitions_in_both_formats() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert openai_tool("w__s", "Search.", schema) == {
        "type": "function", "function": {"name": "w__s", "description": "Search.", "parameters": schema}}
    assert anthropic_tool("w__s", "Search.", schema) == {"name": "w__s", "description": "Search.",
                                                         "input_schema": schema}
    assert anthropic_tool("w__n", "", {})["input_schema"] == {"type": "object", "properties": {}}
    assert openai_tool("w__n", "", {"properties": {}})["function"]["parameters"]["type"] == "object"
    assert tool_name(openai_tool("w__s", "", {})) == tool_name(anthropic_tool("w__s", "", {})) == "w__s"
    assert tool_name({"type": "web_search"}) is None


def test_results_join_text_fall_back_to_structured_content_and_name_the_rest() -> None:
    joined = from_call(CallToolResult(content=[TextContent(type="text", text="a"),
                                               ImageContent(type="image", data="AA==", mime_type="image/png"),
                                               TextContent(type="text", text="b")]), 1000)
    assert (joined.text, joined.is_error, joined.outcome) == ("a\n[image image/png omitted]\nb", False, "ok")
    structured = from_call(CallToolResult(content=[], structured_content={"t": 21.5}), 1000)
    assert structured.text == '{"t":21.5}'
    error = from_call(CallToolResult(content=[TextContent(type="text", text="no")], is_error=True), 1000)
    assert (error.text, error.is_error, error.outcome) == ("no", True, "error")
    cut = from_call(CallToolResult(content=[TextContent(type="text", text="y" * 300)]), 256)
    assert cut.text == "y" * 256 + "\n[result cut: 300 characters, only the first 256 shown]"


def test_results_as_tool_messages_of_both_formats() -> None:
    ok = from_call(CallToolResult(content=[TextContent(type="text", text="21.5")]), 100)
    error = from_call(CallToolResult(content=[TextContent(type="text", text="no city")], is_error=True), 100)
    assert ok.openai_message("call_1") == {"role": "tool", "tool_call_id": "call_1", "content": "21.5"}
    assert error.openai_message("call_2")["content"] == "Error: no city"
    assert ok.anthropic_block("toolu_1") == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21.5"}
    assert error.anthropic_block("toolu_2") == {"type": "tool_result", "tool_use_id": "toolu_2",
                                                "content": "no city", "is_error": True}


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"a": 1}', {"a": 1}), ({"a": 1}, {"a": 1}), ("", {}), ("  ", {}),
    ("[1]", "the arguments must be a JSON object"), ("{", "the arguments are not valid JSON"),
])
def test_arguments_of_both_formats(raw: object, expected: object) -> None:
    assert arguments_of(raw) == expected


MCP = """\
version: 1
secrets: secrets.yaml
mcp_servers:
  files: {url: "http://127.0.0.1:9001/mcp", timeout: 5s, tools: {allow: ["read_*"], deny: [read_secret]},
          max_result: 4096, refresh: 1m}
  web: {url: "https://mcp.example.com/mcp"}
providers:
  mock: {url: "http://127.0.0.1:1/v1"}
agents:
  coder: {models: [mock/m], mcp: {servers: [web, files], max_iterations: 3, max_tool_calls: 9, deadline: 30s,
          parallel: 2}}
  plain: {models: [mock/m]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
"""


def test_mcp_servers_and_agent_loops_compile(tmp_path: Path) -> None:
    write(tmp_path, "mcp_servers: {files: {token: mcp-token-value, headers: {X-Team: blue}}}\n", "secrets.yaml")
    table = compile_file(str(write(tmp_path, MCP)), {}, handlers=HANDLERS.rules)
    files, web = table.mcp_servers["files"], table.mcp_servers["web"]
    assert list(table.mcp_servers) == ["files", "web"]
    assert (files.url, files.timeout, files.allow, files.deny, files.max_result, files.refresh) == (
        "http://127.0.0.1:9001/mcp", 5.0, ("read_*",), ("read_secret",), 4096, 60.0)
    assert dict(files.headers) == {"X-Team": "blue", "Authorization": "Bearer mcp-token-value"}
    assert "mcp-token-value" not in repr(files) and "mcp-token-value" not in repr(table)
    assert (web.timeout, web.max_result, web.refresh, web.headers) == (30.0, 20000, 300.0, ())
    assert table.agents["coder"].mcp == McpLoop(("web", "files"), 3, 9, 30.0, 2)
    assert table.agents["plain"].mcp is None


@pytest.mark.parametrize(("change", "expected"), [
    (("servers: [web, files]", "servers: [web, nope]"), "routes.yaml:10:50: agents.coder.mcp.servers[1]: unknown MCP server 'nope'"),
    (("max_iterations: 3", "max_iterations: 0"), "agents.coder.mcp.max_iterations"),
    (("parallel: 2", "parallel: 2, extra: 1"), "agents.coder.mcp"),
    (("web: {url:", "we.b: {url:"), "mcp_servers"),
    (('"https://mcp.example.com/mcp"', '"ftp://x"'), "mcp_servers.web.url"),
    (("max_result: 4096", "max_result: 10"), "mcp_servers.files.max_result"),
    (("timeout: 5s", "timeout: soon"), "mcp_servers.files.timeout"),
])
def test_invalid_mcp_keys_are_named_with_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    write(tmp_path, "{}\n", "secrets.yaml")
    found = problems(write(tmp_path, MCP.replace(*change)))
    assert any(expected in p for p in found), found


def test_credentials_of_an_unknown_server_are_an_error_without_their_value(tmp_path: Path) -> None:
    write(tmp_path, "mcp_servers: {nope: {token: mcp-token-value}}\n", "secrets.yaml")
    found = problems(write(tmp_path, MCP))
    assert any("secrets.yaml:1:15: mcp_servers.nope: unknown MCP server 'nope'" in p for p in found), found
    assert not any("mcp-token-value" in p for p in found)
