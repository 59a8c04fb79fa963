"""The toolbox (toolbox/) in process against a real MCP server (the `mcp` package's own, in a
subprocess): sessions, tool lists, calls, timeouts, a server down at start, a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from dsl.table import McpLoop, McpServer
from tests.support import McpTestServer, free_port
from toolbox.box import Toolbox

TOOLS = ("count", "echo", "fail", "grow", "hang", "signal", "slow", "weather")


@pytest.fixture(scope="module")
def server() -> Iterator[McpTestServer]:
    started = McpTestServer()
    yield started
    started.stop()


def run(test: Callable[[Toolbox], Awaitable[None]]) -> None:
    """Run `test` with a fresh toolbox on an event loop of its own, closing it after."""

    async def main() -> None:
        toolbox = Toolbox()
        try:
            await test(toolbox)
        finally:
            await toolbox.close()

    asyncio.run(main())


async def until(check: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def connected(toolbox: Toolbox, name: str) -> Callable[[], bool]:
    return lambda: toolbox.snapshot()[name]["connected"]


def offered_names(toolbox: Toolbox, loop: McpLoop, fmt: str = "openai") -> list[str]:
    return [t["function"]["name"] if fmt == "openai" else t["name"] for t in toolbox.offered(loop, fmt)]


def test_tools_are_listed_and_offered_in_both_formats(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"files": McpServer("files", server.url)})
        loop = McpLoop(("files",))
        await until(connected(toolbox, "files"))
        assert offered_names(toolbox, loop) == [f"files__{name}" for name in TOOLS]
        openai_echo = toolbox.offered(loop, "openai")[1]
        assert openai_echo["type"] == "function"
        assert openai_echo["function"]["description"] == "Echo the text back."
        assert openai_echo["function"]["parameters"]["required"] == ["text"]
        anthropic_echo = toolbox.offered(loop, "anthropic")[1]
        assert anthropic_echo == {"name": "files__echo", "description": "Echo the text back.",
                                  "input_schema": openai_echo["function"]["parameters"]}
        stats = toolbox.snapshot()["files"]
        assert stats["protocol_version"] and stats["tools"] == len(TOOLS) == stats["offered"]
        assert toolbox.owns(loop, "files__echo") and not toolbox.owns(loop, "get_weather")
        assert not toolbox.owns(McpLoop(("other",)), "files__echo")
        # A client tool of the same name wins: ours is left out.
        kept = toolbox.offered(loop, "anthropic", frozenset({"files__echo", "get_weather"}))
        assert [t["name"] for t in kept] == [f"files__{name}" for name in TOOLS if name != "echo"]

    run(test)


def test_allow_and_deny_choose_the_tools_offered(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"a": McpServer("a", server.url, allow=("e*", "w*", "slow"), deny=("slow",))})
        await until(connected(toolbox, "a"))
        assert offered_names(toolbox, McpLoop(("a",)), "anthropic") == ["a__echo", "a__weather"]
        assert (await toolbox.call("a__slow", {"seconds": 0})).outcome == "unknown"
        # A reload that changes only the tool choice keeps the session.
        session = toolbox.connections["a"]
        toolbox.configure({"a": McpServer("a", server.url, deny=("hang",))})
        assert toolbox.connections["a"] is session
        assert offered_names(toolbox, McpLoop(("a",))) == ["a__count", "a__echo", "a__fail", "a__grow", "a__signal", "a__slow", "a__weather"]

    run(test)


def test_calls_answer_text_structured_content_and_error_results(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"files": McpServer("files", server.url, max_result=256)})
        await until(connected(toolbox, "files"))
        echo = await toolbox.call("files__echo", '{"text": "hi"}')  # OpenAI's arguments: JSON text
        assert (echo.text, echo.is_error, echo.outcome) == ("echo: hi", False, "ok")
        weather = await toolbox.call("files__weather", {"city": "Oslo"})  # Anthropic's: an object
        assert '"celsius": 21.5' in weather.text and not weather.is_error
        failed = await toolbox.call("files__fail", {"message": "disk on fire"})
        assert failed.is_error and failed.outcome == "error" and "disk on fire" in failed.text
        long = await toolbox.call("files__echo", {"text": "x" * 1000})
        assert long.text.startswith("echo: xxx") and "[result cut: 1006 characters, only the first 256" in long.text
        assert len(long.text) < 400
        bad = await toolbox.call("files__echo", "{not json")
        assert bad.is_error and bad.outcome == "bad_arguments"
        unknown = await toolbox.call("files__nosuch", {})
        assert unknown.is_error and unknown.outcome == "unknown"
        stats = toolbox.snapshot()["files"]
        assert stats["calls"] == 4 and stats["errors"] == 1 and stats["latency_ms"]["p50"] is not None

    run(test)


def test_a_hung_tool_is_cut_at_its_timeout(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"files": McpServer("files", server.url, timeout=0.5)})
        await until(connected(toolbox, "files"))
        hung = await toolbox.call("files__hang", {})
        assert hung.is_error and hung.outcome == "timeout"
        assert hung.text == "tool 'hang' timed out after 0.5s"
        # The session survives a timed-out call.
        assert (await toolbox.call("files__echo", {"text": "still here"})).text == "echo: still here"

    run(test)


def test_a_server_down_at_start_offers_nothing_then_connects_when_it_comes_up() -> None:
    late = McpTestServer(start=False)

    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"late": McpServer("late", late.url)})
        loop = McpLoop(("late",))
        await until(lambda: toolbox.snapshot()["late"]["last_error"])
        stats = toolbox.snapshot()["late"]
        assert not stats["connected"] and "ConnectError" in stats["last_error"]
        assert toolbox.offered(loop, "openai") == ()
        refused = await toolbox.call("late__echo", {"text": "x"})
        assert refused.is_error and refused.outcome == "unknown"
        late.start()
        await until(connected(toolbox, "late"))
        assert (await toolbox.call("late__echo", {"text": "up"})).text == "echo: up"

    try:
        run(test)
    finally:
        late.stop()


def test_a_restarted_server_is_reconnected() -> None:
    restarting = McpTestServer()

    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"r": McpServer("r", restarting.url, refresh=0.2)})
        await until(connected(toolbox, "r"))
        assert (await toolbox.call("r__count", {})).text == "count 1"
        restarting.stop()
        await until(lambda: not toolbox.snapshot()["r"]["connected"])
        assert toolbox.offered(McpLoop(("r",)), "openai") == ()
        restarting.start()
        await until(connected(toolbox, "r"))
        assert (await toolbox.call("r__count", {})).text == "count 1"  # a new server process

    try:
        run(test)
    finally:
        restarting.stop()


def test_credentials_come_from_the_settings_and_never_show() -> None:
    token = "mcp-secret-token-5be1f0"
    guarded = McpTestServer(token=token)

    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({
            "with": McpServer("with", guarded.url, headers=(("Authorization", f"Bearer {token}"),)),
            "without": McpServer("without", guarded.url),
        })
        await until(connected(toolbox, "with"))
        await until(lambda: toolbox.snapshot()["without"]["last_error"])
        assert not toolbox.snapshot()["without"]["connected"]
        assert token not in repr(toolbox.snapshot()) and token not in repr(toolbox.connections["with"].settings)

    try:
        run(test)
    finally:
        guarded.stop()


def test_removed_servers_are_closed_on_reconfigure(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"a": McpServer("a", server.url), "b": McpServer("b", f"http://127.0.0.1:{free_port()}/mcp")})
        await until(connected(toolbox, "a"))
        toolbox.configure({"b": McpServer("b", server.url)})  # a removed, b's url changed
        assert list(toolbox.snapshot()) == ["b"]
        await until(connected(toolbox, "b"))
        assert offered_names(toolbox, McpLoop(("a", "b")))[:1] == ["b__count"]

    run(test)


def test_a_tool_list_change_is_read_when_the_server_says_so(server: McpTestServer) -> None:
    async def test(toolbox: Toolbox) -> None:
        toolbox.configure({"g": McpServer("g", server.url, refresh=3600)})  # no periodic read in this test
        await until(lambda: toolbox.snapshot()["g"]["tool_list_notifications"])
        assert (await toolbox.call("g__grow", {"name": "sprout"})).text == "added sprout"
        await until(lambda: "g__sprout" in offered_names(toolbox, McpLoop(("g",))))
        assert (await toolbox.call("g__sprout", {"text": "hi"})).text == "sprout: hi"

    run(test)
