"""Handlers declare their own rules: a handler written here, in a test module, compiles and serves.

EchoHandler is all a new handler is: the compiler, the router and `gateway.py routes`
learn everything from its `rules`. `HANDLERS.adding` stands in for its line in
handlers/registry.py, and the registry's names stand in for the schema's `handler`
enum (the validator takes them from the registry). Served in process (pytest-tornado)
through the gateway's own router, so its auth and limits apply as to any route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Table
from dsl.validate import SCHEMA_DIR
from gateway import print_routes
from handlers.base import GatewayHandler
from handlers.registry import HANDLERS
from runtime.process import Runtime
from server.app import TableRouter


def _needs_word(check: RouteCheck) -> RouteOptions:
    if "word" not in check.params:
        check.error(("match",), "an echo route needs {word} in its path")
    return {}


class EchoHandler(GatewayHandler):
    """GET /echo/{word}: the word back, open to anyone."""

    rules = HandlerRules(
        "echo", open=True, check=_needs_word, upstream=lambda route, table: "(itself)"
    )

    def get(self, word: str) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{word}!")


WITH_ECHO = HANDLERS.adding(EchoHandler)


def compiled(tmp_path: Path, routes: str, handlers: tuple[HandlerRules, ...] = WITH_ECHO.rules) -> Table:
    path = tmp_path / "routes.yaml"
    path.write_text(f"version: 1\nroutes:\n{routes}")
    return compile_file(str(path), {}, handlers=handlers)


ECHO_ROUTES = """\
  - {match: "GET /echo/{word}", handler: echo}
  - {match: "GET /locked/{word}", handler: echo, auth: bearer}
"""


@pytest.fixture
def app(io_loop: IOLoop, tmp_path: Path) -> Iterator[TableRouter]:
    """What pytest-tornado's http_server serves: the gateway's router, on this test's IOLoop."""
    table = compiled(tmp_path, ECHO_ROUTES)
    runtime = Runtime.start(table.server)
    yield TableRouter(table, runtime, WITH_ECHO)
    runtime.upstream.close()


@pytest.mark.gen_test
async def test_a_handler_from_a_test_module_is_served(http_client: AsyncHTTPClient, base_url: str) -> None:
    response = await http_client.fetch(f"{base_url}/echo/hello")
    assert (response.code, response.body) == (200, b"hello!")
    # Its rules say open by default; the route's own auth: still wins, as for any handler.
    locked = await http_client.fetch(f"{base_url}/locked/hello", raise_error=False)
    assert locked.code == 401


def test_its_check_and_key_rules_run_in_the_compiler(tmp_path: Path) -> None:
    bad = """\
  - {match: "GET /echo", handler: echo, converters: [sse-frame], endpoint: x}
"""
    with pytest.raises(ConfigError) as caught:
        compiled(tmp_path, bad)
    assert [p.message for p in caught.value.problems] == [
        "an echo route needs {word} in its path",
        "the echo handler takes no converters",
        "'endpoint' applies only to forward routes",
    ]


def test_unregistered_it_is_an_unknown_handler(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        compiled(tmp_path, ECHO_ROUTES, HANDLERS.rules)
    assert "'echo' is not one of: chat, forward" in str(caught.value)


def test_routes_prints_its_upstream_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    print_routes(compiled(tmp_path, ECHO_ROUTES), WITH_ECHO)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["GET", "/echo/{word}", "echo", "none", "-", "(itself)"]


def test_the_schema_lists_the_registered_handlers_in_order() -> None:
    schema = json.loads((SCHEMA_DIR / "routes.schema.json").read_text())
    assert schema["$defs"]["route"]["properties"]["handler"]["enum"] == list(HANDLERS.classes)


def test_every_registered_handler_declares_its_own_rules() -> None:
    for name, cls in HANDLERS.classes.items():
        assert "rules" in vars(cls), f"{cls.__name__} inherits the rules of another handler"
        assert cls.rules.name == name


def test_a_route_option_may_choose_the_class_that_serves_it(tmp_path: Path) -> None:
    table = compiled(tmp_path, """\
  - {match: "POST /v1/files", handler: forward, body: stream}
  - {match: "POST /v1/batches", handler: forward}
""")
    served = [HANDLERS.class_for(route).__name__ for route in table.routes]
    assert served == ["StreamingForwardHandler", "ForwardHandler"]
