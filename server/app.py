"""Compiled table → Tornado routing, and the router that swaps tables on reload in one step."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from tornado import httputil
from tornado.routing import Matcher, Router, Rule
from tornado.web import Application

from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.registry import HANDLERS, Handlers
from runtime.process import Runtime
from server.limits import Guard


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
    """No route matched: a 404, or a 405 when only the method is wrong.

    Its route is a stand-in in the error shape the client speaks. For a 405, that of
    the route whose path matched. For a 404, Anthropic's when the client is clearly
    an Anthropic one (it sent `anthropic-version`, or the path is under one served by
    an Anthropic-ingress route, as /v1/messages/batches is under /v1/messages);
    OpenAI's otherwise.
    """

    allowed: str = ""

    def initialize(  # type: ignore[override]
        self, route: Route, table: Table, runtime: Runtime, allowed: str = ""
    ) -> None:
        super().initialize(route, table, runtime)
        self.allowed = allowed

    def prepare(self) -> None:
        super().prepare()
        if self.allowed:
            self.fail(
                405,
                f"method {self.request.method} is not allowed on {self.request.path}",
                headers={"Allow": self.allowed},
            )
        else:
            self.fail(404, f"no route for {self.request.method} {self.request.path}", "not_found")


class AnthropicClientMatcher(Matcher):
    """Requests that are clearly from an Anthropic client (see NotFoundHandler)."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        path = request.path or ""
        if "anthropic-version" in request.headers or any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes
        ):
            return {}
        return None


_NOT_FOUND_ROUTE_TEMPLATE = "(unmatched)"


def build_application(table: Table, runtime: Runtime, handlers: Handlers = HANDLERS) -> Application:
    """One Tornado Application per compiled table; its handlers hold that table and the runtime.

    Rules, first match wins: the routes; then their paths with any other method (405);
    then Anthropic clients' unmatched paths (404, Anthropic shape); else a 404 in OpenAI's.
    """
    rules: list[Rule] = [
        Rule(
            RouteMatcher(route),
            handlers.class_for(route),
            {"route": route, "table": table, "runtime": runtime},
        )
        for route in table.routes
    ]
    unmatched = {ingress: _unmatched_route(ingress) for ingress in ("openai", "anthropic")}
    for route in table.routes:
        allowed = ", ".join(
            sorted({m for r in table.routes if r.template == route.template for m in (r.methods or {"ANY"})})
        )
        rules.append(
            Rule(
                RouteMatcher(route, any_method=True),
                NotFoundHandler,
                {"route": unmatched[route.ingress], "table": table, "runtime": runtime, "allowed": allowed},
            )
        )
    prefixes = tuple(
        sorted({r.template.partition("{")[0].rstrip("/") for r in table.routes if r.ingress == "anthropic"})
    )
    anthropic = {"route": unmatched["anthropic"], "table": table, "runtime": runtime}
    rules.append(Rule(AnthropicClientMatcher(prefixes), NotFoundHandler, anthropic))
    return Application(
        rules,
        default_handler_class=NotFoundHandler,
        default_handler_args={"route": unmatched["openai"], "table": table, "runtime": runtime},
        log_function=lambda handler: None,
        compress_response=False,
        serve_traceback=False,
    )


def _unmatched_route(ingress: str) -> Route:
    return Route(
        match=_NOT_FOUND_ROUTE_TEMPLATE,
        methods=None,
        template="",
        pattern=re.compile("$^"),
        handler="none",
        ingress=ingress,
        auth=False,
        admin=False,
        chains=MappingProxyType({}),
        line=0,
    )


class TableRouter(Router):
    """The HTTP server's delegate. `swap` replaces the live table with one reference write."""

    def __init__(self, table: Table, runtime: Runtime, handlers: Handlers = HANDLERS) -> None:
        self.runtime = runtime
        self.handlers = handlers
        self._configure_breakers(table)
        runtime.limiter.configure(table)
        runtime.toolbox.configure(table.mcp_servers)
        self.live = (table, build_application(table, runtime, handlers))
        self.draining = False  # set on SIGTERM: kept-alive connections end with their next answer

    @property
    def table(self) -> Table:
        return self.live[0]

    def swap(self, table: Table) -> None:
        """Serve `table` from now on; breakers of targets it still has keep their state, and the
        limits their counts unless `state:` changed."""
        self._configure_breakers(table)
        self.runtime.limiter.configure(table)
        self.runtime.toolbox.configure(table.mcp_servers)
        self.live = (table, build_application(table, self.runtime, self.handlers))

    def _configure_breakers(self, table: Table) -> None:
        """The breakers follow `table`'s settings: the top-level ones and each provider's own."""
        providers = {name: provider.breakers for name, provider in table.providers.items()}
        self.runtime.breakers.configure(table.breakers, providers)

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Guard:
        table, application = self.live
        delegate: Any = application.find_handler(request, **kwargs)  # a tornado.web._HandlerDelegate
        return Guard(delegate, request, delegate.handler_kwargs["route"], table, self.runtime, self.draining)

    def ingress_for_head(self, head: bytes) -> str:
        """The error shape for a request known only by its head (request line and headers)."""
        text = head.decode("latin1").lstrip("\r\n")
        line, _, rest = text.partition("\n")
        request = httputil.HTTPServerRequest(
            start_line=httputil.parse_request_start_line(line.rstrip("\r")),
            headers=httputil.HTTPHeaders.parse(rest),
        )
        return self.find_handler(request).route.ingress
