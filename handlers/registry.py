"""The handlers a route may name: the one list the compiler, the app and `gateway.py routes` read.

Adding a handler: its module (a GatewayHandler subclass with `rules`), a line here,
and its name in the `handler` enum of schemas/routes.schema.json (a test keeps the
two lists equal; docs/reference.md is generated from the schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dsl.handler_rules import HandlerRules
from dsl.table import Route
from handlers.base import GatewayHandler
from handlers.chat import ChatHandler
from handlers.count_tokens import CountTokensHandler
from handlers.debug import DebugHandler
from handlers.forward import ForwardHandler
from handlers.models import ModelsHandler
from handlers.ops import HealthHandler, MetricsHandler, StatsHandler
from handlers.passthrough import PassthroughHandler


@dataclass(frozen=True, slots=True)
class Handlers:
    """Handler classes by DSL name, in the order `check` lists them when a name is unknown."""

    classes: Mapping[str, type[GatewayHandler]]

    @classmethod
    def of(cls, *classes: type[GatewayHandler]) -> Handlers:
        return cls(MappingProxyType({handler.rules.name: handler for handler in classes}))

    @property
    def rules(self) -> tuple[HandlerRules, ...]:
        """What the compiler needs of each handler: no Tornado class crosses into dsl/."""
        return tuple(handler.rules for handler in self.classes.values())

    def class_for(self, route: Route) -> type[GatewayHandler]:
        return self.classes[route.handler].for_route(route)

    def adding(self, *classes: type[GatewayHandler]) -> Handlers:
        """These handlers and `classes` (a test's own, say)."""
        return Handlers.of(*self.classes.values(), *classes)


HANDLERS = Handlers.of(
    ChatHandler,
    ForwardHandler,
    CountTokensHandler,
    PassthroughHandler,
    ModelsHandler,
    HealthHandler,
    MetricsHandler,
    StatsHandler,
    DebugHandler,
)
