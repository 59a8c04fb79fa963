"""Compiled table → Tornado routing, and the router that swaps tables on reload in one step."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.routing import Matcher, Router, Rule
from tornado.web import Application

from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.chat import ChatHandler
from handlers.count_tokens import CountTokensHandler
from handlers.debug import DebugHandler
from handlers.forward import ForwardHandler, StreamingForwardHandler
from handlers.limits import Guard, refuse_connection
from handlers.models import ModelsHandler
from handlers.ops import HealthHandler, MetricsHandler, StatsHandler
from handlers.passthrough import PassthroughHandler

HANDLERS: dict[str, type[GatewayHandler]] = {
    "chat": ChatHandler,
    "forward": ForwardHandler,
    "count_tokens": CountTokensHandler,
    "debug": DebugHandler,
    "models": ModelsHandler,
    "passthrough": PassthroughHandler,
    "health": HealthHandler,
    "metrics": MetricsHandler,
    "statsz": StatsHandler,
}


class RouteMatcher(Matcher):
    """Matches a route's method set and path; path parameters stay percent-encoded."""

    def __init__(self, route: Route, any_method: bool = False) -> None:
        self.route = route
        self.any_method = any_method

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        found = self.route.pattern.match(request.path or "")
        if found is None:
            return None
        if not self.any_method and not self.route.accepts(request.method or ""):
            return None
        return {"path_args": [], "path_kwargs": found.groupdict()}


class NotFoundHandler(GatewayHandler):
    """No route matched: an OpenAI-shaped 404 (or 405 when only the method is wrong)."""

    allowed: str = ""

    def initialize(self, route: Route, table: Table, allowed: str = "") -> None:  # type: ignore[override]
        super().initialize(route, table)
        self.allowed = allowed

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        if self.allowed:
            self.fail(
                405,
                f"method {self.request.method} is not allowed on {self.request.path}",
                headers={"Allow": self.allowed},
            )
        else:
            self.fail(404, f"no route for {self.request.method} {self.request.path}", "not_found")


_NOT_FOUND_ROUTE_TEMPLATE = "(unmatched)"


def handler_class(route: Route) -> type[GatewayHandler]:
    if route.stream_body:
        return StreamingForwardHandler
    return HANDLERS[route.handler]


def build_application(table: Table) -> Application:
    """One Tornado Application per compiled table; its handlers hold that table."""
    rules: list[Rule] = [
        Rule(RouteMatcher(route), handler_class(route), {"route": route, "table": table})
        for route in table.routes
    ]
    fallback = _unmatched_route(table)
    for route in table.routes:
        allowed = ", ".join(
            sorted({m for r in table.routes if r.template == route.template for m in (r.methods or {"ANY"})})
        )
        rules.append(
            Rule(
                RouteMatcher(route, any_method=True),
                NotFoundHandler,
                {"route": fallback, "table": table, "allowed": allowed},
            )
        )
    return Application(
        rules,
        default_handler_class=NotFoundHandler,
        default_handler_args={"route": fallback, "table": table},
        log_function=lambda handler: None,
        compress_response=False,
        serve_traceback=False,
    )


def _unmatched_route(table: Table) -> Route:
    return Route(
        match=_NOT_FOUND_ROUTE_TEMPLATE,
        methods=None,
        template="",
        pattern=re.compile("$^"),
        handler="none",
        ingress="openai",
        auth=False,
        admin=False,
        chains=MappingProxyType({}),
        line=0,
    )


class TableRouter(Router):
    """The HTTP server's delegate. `swap` replaces the live table with one reference write."""

    def __init__(self, table: Table) -> None:
        self.live = (table, build_application(table))

    @property
    def table(self) -> Table:
        return self.live[0]

    def swap(self, table: Table) -> None:
        self.live = (table, build_application(table))

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate:
        table, application = self.live
        delegate = application.find_handler(request, **kwargs)
        route = getattr(delegate, "handler_kwargs", {}).get("route")
        return Guard(delegate, request.connection, route.ingress if route else "openai", table.server)


class GatewayServer(HTTPServer):
    """Tornado's HTTP server with a cap on open connections."""

    def __init__(self, router: TableRouter, max_connections: int, **kwargs: Any) -> None:
        super().__init__(router, **kwargs)
        self.max_connections = max_connections

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if len(self._connections) >= self.max_connections:
            refuse_connection(stream)
            return
        super().handle_stream(stream, address)
