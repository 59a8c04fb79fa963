"""What a handler declares about its routes: the compiler's contract with handlers.

Each handler class carries one HandlerRules (its DSL name, default auth, the route
keys it takes, a check that compiles them, how `gateway.py routes` shows it). The
compiler receives the rules as data and never imports a handler: that keeps dsl/
free of Tornado and of the handlers package, and `gateway.py check` light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from converters.registry import ChainPlan
from dsl.errors import KeyPath
from dsl.table import Provider, Route, Table
from stages.stage import Stage


class Reporter(Protocol):
    def error(self, path: KeyPath, message: str) -> None: ...
    def warn(self, path: KeyPath, message: str) -> None: ...


class RouteOptions(TypedDict, total=False):
    """The Route fields a handler's check compiles from its own keys."""

    chains: Mapping[str, ChainPlan]
    endpoint: str
    providers: tuple[Provider, ...]
    stream_body: bool


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """One route as its handler's check sees it; problems are reported at keys under the route."""

    spec: Mapping[str, Any]  # the route's YAML mapping
    path: KeyPath  # ("routes", i)
    template: str  # the match's path
    params: frozenset[str]  # the match's {parameters}
    ingress: str
    providers: Mapping[str, Provider]  # usable ones
    skipped: frozenset[str]  # declared, but left out for want of a key
    reporter: Reporter

    def error(self, keys: KeyPath, message: str) -> None:
        self.reporter.error((*self.path, *keys), message)

    def warn(self, keys: KeyPath, message: str) -> None:
        self.reporter.warn((*self.path, *keys), message)


def _no_options(check: RouteCheck) -> RouteOptions:
    return {}


def _no_upstream(route: Route, table: Table) -> str:
    return "-"


@dataclass(frozen=True, slots=True)
class HandlerRules:
    """A handler as routes.yaml names it.

    `keys` are the route keys beyond match, handler, ingress, auth and admin that this
    handler takes; a route of another handler that sets one is told `refusal`, formatted
    with {key}, {handler} (the route's) and {owner} (this one). `check` validates a route
    and compiles those keys; `upstream` is the UPSTREAM column of `gateway.py routes`;
    `stages` go into each of its routes.
    """

    name: str
    open: bool = False  # auth defaults to none
    admin: bool = False  # only admin keys by default
    keys: tuple[str, ...] = ()
    refusal: str = "'{key}' applies only to {owner} routes"
    check: Callable[[RouteCheck], RouteOptions] = _no_options
    upstream: Callable[[Route, Table], str] = _no_upstream
    stages: tuple[Stage, ...] = ()  # the steps every route of this handler runs, in order
    # What a route's `redaction:` redacts (dsl/redaction_rules.py): "chat" requests (and answers,
    # and agents' policies), a "json" body, or nothing ("": the key is refused).
    redaction: str = ""
