"""Compiled table → Tornado routing, and the router that swaps tables on reload in one step."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from tornado import gen, httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError, UnsatisfiableReadError
from tornado.routing import Matcher, Router, Rule
from tornado.web import Application

from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.registry import HANDLERS, Handlers
from runtime.process import Runtime
from server.limits import Guard, refuse_connection

_REFUSAL_HEAD_BYTES = 16 * 1024
_REFUSALS_READING = 64  # past the cap, at most this many refused connections are read from at once


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


class GatewayServer(HTTPServer):
    """Tornado's HTTP server with a cap on open connections.

    HTTPServer is configured through `initialize` (Tornado's Configurable), so the cap
    is a keyword there: passed positionally it would land on `no_keep_alive`.
    """

    router: TableRouter
    max_connections: int
    refusing = 0  # refused connections whose request head is being read

    def initialize(  # type: ignore[override]
        self, router: TableRouter, *, max_connections: int, **kwargs: Any
    ) -> None:
        super().initialize(router, **kwargs)
        self.router = router
        self.max_connections = max_connections

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if len(self._connections) >= self.max_connections:
            if self.refusing < _REFUSALS_READING:
                IOLoop.current().spawn_callback(self._refuse, stream)
            else:  # a flood: answer at once, without reading
                refuse_connection(stream, "openai")
            return
        # TCP_NODELAY once per connection, for good: Tornado turns it on to send each answer's
        # end and off again after it (two system calls a request), and with it off, the chunks
        # of a relayed stream wait for Nagle's algorithm. A proxy sends what it has at once.
        stream.set_nodelay(True)
        stream.set_nodelay = _nodelay_stays_on  # type: ignore[method-assign]
        super().handle_stream(stream, address)

    async def _refuse(self, stream: IOStream) -> None:
        """Past the cap: read the request head for a moment, to answer in its route's shape."""
        ingress = "openai"
        unreadable = (TimeoutError, StreamClosedError, UnsatisfiableReadError, httputil.HTTPInputError)
        self.refusing += 1
        try:
            with contextlib.suppress(*unreadable):
                head = await gen.with_timeout(
                    timedelta(seconds=1),
                    stream.read_until_regex(b"\r?\n\r?\n", max_bytes=_REFUSAL_HEAD_BYTES),
                    quiet_exceptions=(StreamClosedError, UnsatisfiableReadError),
                )
                ingress = self.router.ingress_for_head(head)
        finally:
            self.refusing -= 1
        refuse_connection(stream, ingress)


def _nodelay_stays_on(value: bool) -> None:
    """A client connection's set_nodelay: TCP_NODELAY was set when it opened, and stays on."""
