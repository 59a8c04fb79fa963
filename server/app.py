"""The router the server asks for each request's delegate; it swaps tables on reload in one step."""

from __future__ import annotations

from typing import Any

from tornado import httputil
from tornado.routing import Router

from dsl.table import Table
from handlers.registry import HANDLERS, Handlers
from runtime.process import Runtime
from server.dispatch import Routes
from server.limits import Guard


class TableRouter(Router):
    """The HTTP server's delegate. `swap` replaces the live table with one reference write."""

    def __init__(self, table: Table, runtime: Runtime, handlers: Handlers = HANDLERS) -> None:
        self.runtime = runtime
        self.handlers = handlers
        self._configure_breakers(table)
        runtime.limiter.configure(table)
        runtime.toolbox.configure(table.mcp_servers)
        self.live = (table, Routes(table, runtime, handlers))
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
        self.live = (table, Routes(table, self.runtime, self.handlers))

    def _configure_breakers(self, table: Table) -> None:
        """The breakers follow `table`'s settings: the top-level ones and each provider's own."""
        providers = {name: provider.breakers for name, provider in table.providers.items()}
        self.runtime.breakers.configure(table.breakers, providers)

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Guard:
        table, routes = self.live
        return Guard(request, *routes.find(request), table, self.runtime, self.draining)

    def ingress_for_head(self, head: bytes) -> str:
        """The error shape for a request known only by its head (request line and headers)."""
        text = head.decode("latin1").lstrip("\r\n")
        line, _, rest = text.partition("\n")
        request = httputil.HTTPServerRequest(
            start_line=httputil.parse_request_start_line(line.rstrip("\r")),
            headers=httputil.HTTPHeaders.parse(rest),
        )
        return self.find_handler(request).route.ingress
