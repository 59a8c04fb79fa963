"""A compiled table's routing, and the delegate that runs a routed request's handler.

`Routes` finds, for a request's method and path, the handler class and its arguments: first
match wins, as the routes are listed; then 405 for a path served with other methods; then an
Anthropic-shaped 404 for a clearly Anthropic client; else an OpenAI-shaped 404.
`Dispatch` is what the server (server/http1.py) tells of the request's body: buffered and
handed over whole, or streamed to a handler that takes it as it arrives. The server's delegate
is a Dispatch with the limits checked first (server/limits.Guard): one object per request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import Any

from tornado import httputil

from access.keys import Principal
from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.registry import Handlers
from runtime.process import Runtime

UNMATCHED_ROUTE = "(unmatched)"  # the route label of requests no route serves
# What routing finds for a request: its handler class, the route's handler arguments, the path's.
Found = tuple[type[GatewayHandler], dict[str, Any], dict[str, str]]
_Literal = Found  # the same, found once for a literal path (its parameters copied for each request)


class NotFoundHandler(GatewayHandler):
    """No route matched: a 404, or a 405 when only the method is wrong.

    Its route is a stand-in in the error shape the client speaks. For a 405, that of
    the route whose path matched. For a 404, Anthropic's when the client is clearly
    an Anthropic one (it sent `anthropic-version`, or the path is under one served by
    an Anthropic-ingress route, as /v1/messages/batches is under /v1/messages);
    OpenAI's otherwise.
    """

    allowed: str = ""

    def initialize(self, arguments: Mapping[str, Any]) -> None:
        self.allowed = arguments.get("allowed", "")

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


class Dispatch(httputil.HTTPMessageDelegate):
    """One routed request: its handler made and run when the body is in (or, for a handler
    that streams it, when the head is), the body buffered or handed on as it arrives."""

    def __init__(
        self, request: httputil.HTTPServerRequest, handler_class: type[GatewayHandler],
        handler_kwargs: dict[str, Any], path_kwargs: dict[str, str],
    ) -> None:
        self.request = request
        self.handler_class = handler_class
        self.handler_kwargs = handler_kwargs  # the route's, shared by its requests
        self.route: Route = handler_kwargs["route"]
        self.principal: Principal | None = None  # whom the Guard authenticated, on a route with auth
        self.path_kwargs = path_kwargs
        self.stream_request_body = handler_class.streams_body
        self.chunks: list[bytes] | None = []
        self.handler: GatewayHandler | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if self.stream_request_body:
            return self._execute()
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.stream_request_body:
            assert self.handler is not None
            return self.handler.data_received(chunk)  # type: ignore[attr-defined]
        if self.chunks is not None:
            self.chunks.append(chunk)
        return None

    def finish(self) -> None:
        if self.stream_request_body:
            self._body_ended(True)
        elif self.chunks is not None:
            chunks, self.chunks = self.chunks, None
            self.request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._execute()

    def on_connection_close(self) -> None:
        if self.stream_request_body and self.handler is not None:
            self.handler.on_connection_close()
            self._body_ended(False)
        else:
            self.chunks = None

    def _execute(self) -> asyncio.Future[None] | None:
        """Make the handler and run it; for a streamed body, the future of its `prepare`
        (the server reads the body only once that is over)."""
        handler = self.handler = self.handler_class(
            self.request, self.path_kwargs, self.principal, self.handler_kwargs
        )
        # The connection's loop, the running one: asyncio.get_running_loop() costs a getpid() on 3.11.
        loop: asyncio.AbstractEventLoop = self.request.server_connection.loop  # type: ignore[attr-defined]
        if self.stream_request_body:
            handler.body_arrived = loop.create_future()
            handler.prepared = loop.create_future()
        loop.create_task(handler.run())
        return handler.prepared

    def _body_ended(self, whole: bool) -> None:
        arrived = self.handler.body_arrived if self.handler is not None else None
        if arrived is not None and not arrived.done():
            arrived.set_result(whole)


class Routes:
    """One compiled table's routing; the handlers it makes hold that table and the runtime."""

    def __init__(self, table: Table, runtime: Runtime, handlers: Handlers) -> None:
        self.served = [
            (route, handlers.class_for(route), {"route": route, "table": table, "runtime": runtime})
            for route in table.routes
        ]
        unmatched = {ingress: _unmatched_route(ingress) for ingress in ("openai", "anthropic")}
        self.misrouted = []  # a served path, another method: 405 with the methods it has
        for route in table.routes:
            same_path = (r for r in table.routes if r.template == route.template)
            methods = {m for r in same_path for m in (r.methods or {"ANY"})}
            allowed = ", ".join(sorted(methods))
            self.misrouted.append(
                (route.pattern, {"route": unmatched[route.ingress], "table": table, "runtime": runtime,
                                 "allowed": allowed})
            )
        # The paths routes name literally (no parameter): for each, by method, what the walk over
        # the patterns below would find first, found here once: a request for one of them (every
        # chat request) is routed by two lookups, not by matching each pattern in turn.
        self.literal: dict[str, tuple[dict[str, _Literal], _Literal | None]] = {}
        for route in table.routes:
            if not route.pattern.groupindex and route.template not in self.literal:
                self.literal[route.template] = self._literal(route.template)
        anthropic = (r for r in table.routes if r.ingress == "anthropic")
        prefixes = {r.template.partition("{")[0].rstrip("/") for r in anthropic}
        self.anthropic_prefixes = tuple(sorted(prefixes))
        self.not_found = {
            ingress: {"route": route, "table": table, "runtime": runtime}
            for ingress, route in unmatched.items()
        }

    def _literal(self, path: str) -> tuple[dict[str, _Literal], _Literal | None]:
        """What `find` finds for `path` by method (the first served route whose pattern matches
        it and that takes the method), and for a method no route names (the first route taking any)."""
        matching = []
        for route, handler_class, kwargs in self.served:
            found = route.pattern.match(path)
            if found is not None:
                matching.append((route, (handler_class, kwargs, found.groupdict())))
        named = {method for route, _ in matching for method in route.methods or ()}
        by_method = {m: next(f for route, f in matching if route.accepts(m)) for m in named}
        return by_method, next((f for route, f in matching if route.methods is None), None)

    def find(self, request: httputil.HTTPServerRequest) -> Found:
        """The handler class for `request`, its arguments, and the path's parameters: what a
        Dispatch is made with (the router makes the Guard, a Dispatch with the limits)."""
        path = request.path or ""
        method = request.method or ""
        literal = self.literal.get(path)
        if literal is not None:
            by_method, any_method = literal
            routed = by_method.get(method, any_method)
            if routed is not None:
                handler_class, kwargs, parameters = routed
                return handler_class, kwargs, parameters.copy()  # each request's own, as groupdict's
        else:
            for route, handler_class, kwargs in self.served:
                found = route.pattern.match(path)
                if found is not None and route.accepts(method):
                    return handler_class, kwargs, found.groupdict()
        for pattern, kwargs in self.misrouted:
            if pattern.match(path) is not None:
                return NotFoundHandler, kwargs, {}
        anthropic = "anthropic-version" in request.headers or any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.anthropic_prefixes
        )
        return NotFoundHandler, self.not_found["anthropic" if anthropic else "openai"], {}


def _unmatched_route(ingress: str) -> Route:
    return Route(
        match=UNMATCHED_ROUTE,
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
