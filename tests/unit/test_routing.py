"""Routing: a literal path's route, found by lookup (server/dispatch.py `Routes.literal`), is the
one the walk over the route patterns in order finds (first match that takes the method wins), and
every other path is still walked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado import httputil

from dsl.compiler import compile_file
from handlers.registry import HANDLERS
from server.dispatch import Found, NotFoundHandler, Routes

ROUTES = """\
version: 1
providers:
  mock:
    url: http://127.0.0.1:1/v1
agents:
  a: {models: [mock/m1]}
routes:
  - match: POST /v1/chat/completions
    handler: chat
  - match: GET|DELETE /v1/responses/{id}
    handler: forward
  - match: POST /v1/responses/latest
    handler: forward
  - match: ANY /proxy/{provider}/{path*}
    handler: passthrough
  - match: GET /proxy/mock/v1/models
    handler: health
  - match: GET /healthz
    handler: health
"""


def _routes(tmp_path: Path) -> Routes:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    table = compile_file(str(path), {}, handlers=HANDLERS.rules)
    return Routes(table, runtime=object(), handlers=HANDLERS)  # type: ignore[arg-type]


def _request(method: str, path: str) -> httputil.HTTPServerRequest:
    start_line = httputil.RequestStartLine(method, path, "HTTP/1.1")
    return httputil.HTTPServerRequest(start_line=start_line, headers=httputil.HTTPHeaders({"Host": "gw"}))


def _walked(routes: Routes, method: str, path: str) -> Found | None:
    """What the walk over every route's pattern, in order, finds."""
    for route, handler_class, kwargs in routes.served:
        found = route.pattern.match(path)
        if found is not None and route.accepts(method):
            return handler_class, kwargs, found.groupdict()
    return None


def _route(found: Found) -> Any:
    return found[1]["route"].match


def test_literal_paths_route_as_the_walk_does(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    assert set(routes.literal) == {"/v1/chat/completions", "/v1/responses/latest", "/proxy/mock/v1/models",
                                   "/healthz"}
    for path in [*routes.literal, "/v1/responses/r1", "/proxy/mock/v1/files", "/nowhere"]:
        for method in ("GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "BREW"):
            walked = _walked(routes, method, path)
            found = routes.find(_request(method, path))
            if walked is None:
                assert found[0] is NotFoundHandler, (method, path)
            else:
                assert found == walked, (method, path)
    # A pattern listed before a literal route wins its path for the methods it takes ...
    found = routes.find(_request("GET", "/v1/responses/latest"))
    assert _route(found) == "GET|DELETE /v1/responses/{id}" and found[2] == {"id": "latest"}
    assert _route(routes.find(_request("POST", "/v1/responses/latest"))) == "POST /v1/responses/latest"
    # ... and an ANY pattern before a literal one takes it whole, parameters and all.
    found = routes.find(_request("GET", "/proxy/mock/v1/models"))
    assert _route(found) == "ANY /proxy/{provider}/{path*}"
    assert found[2] == {"provider": "mock", "path": "v1/models"}


def test_a_literal_paths_parameters_are_each_requests_own(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    first = routes.find(_request("POST", "/proxy/mock/v1/models"))[2]
    first["path"] = "changed"
    assert routes.find(_request("POST", "/proxy/mock/v1/models"))[2] == {"provider": "mock", "path": "v1/models"}


def test_a_literal_path_with_another_method_is_refused_as_before(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    found = routes.find(_request("GET", "/v1/chat/completions"))
    assert found[0] is NotFoundHandler and found[1]["allowed"] == "POST"
    found = routes.find(_request("POST", "/healthz"))
    assert found[0] is NotFoundHandler and found[1]["allowed"] == "GET"
