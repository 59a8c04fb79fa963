"""Process state lives in one Runtime (runtime/process.py), never in a module global.

In process, no gateway started: every module of the gateway's packages is imported
and each name it binds at top level must hold a constant, and no function may
rebind a module name (`global`). The few exceptions are listed below, each with why.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib
import inspect
import logging
import pkgutil
import re
import types
from enum import Enum
from pathlib import Path, PurePath

from prometheus_client.metrics import MetricWrapperBase

from converters.usage import Usage
from dsl.table import ServerSettings
from ops.local_metrics import LocalMetric
from ops.published_metrics import GaugeChild, PublishedMetric
from runtime.process import Runtime
from tests.support import ROOT

PACKAGES = ("access", "converters", "dsl", "handlers", "limits", "ops", "redaction", "runtime", "server", "stages",
            "toolbox", "upstream")

# Lookup tables: dicts filled at import and only ever read.
LOOKUP_TABLES = frozenset(
    {
        "converters.chat_mapping.FINISH_REASONS",
        "converters.chat_mapping.STOP_REASONS",
        "converters.chat_requests.EFFORT_BUDGETS",
        "converters.chat_requests._EFFORTS",
        "converters.chat_requests._EMPTY_SCHEMA",
        "dsl.units._DURATION_FACTORS",
        "dsl.units._SIZE_FACTORS",
        "handlers.auth._MESSAGES",
        "handlers.errors._ANTHROPIC_TYPES",
        "handlers.errors._OPENAI_TYPES",
        "limits.limiter._KIND_WORDS",
        "limits.redis_state._KINDS",
        "limits.state_protocol._LENGTH",
        "redaction.presets.PRESETS",
        "ops.log_lines._ESCAPES",
        "ops.profiling._HEAP_FILTERS",  # tracemalloc.Filter objects, made once and never changed
    }
)
# State of the operating-system process or the interpreter, not of a gateway runtime.
PROCESS_WIDE = frozenset(
    {
        # The notify socket is the OS process's ($NOTIFY_SOCKET names the process to systemd),
        # cached per pid, so a forked worker opens its own; the lock guards that cache.
        "ops.sdnotify._cached",
        "ops.sdnotify._lock",
        # One profile at a time in the interpreter: cProfile's hook and the sampler read the
        # event-loop thread, so two runtimes in one process must not profile at once either.
        "ops.profiling._profiling",
        # Prometheus keeps one registry per process by design (its multiprocess mode for
        # pre-fork workers works on module-level metrics); the metrics are declarations.
        "ops.metrics.REGISTRY",
        # With workers, the hot metrics' changes not yet in this process's prometheus_client
        # file, written once per loop pass (ops/published_metrics.py): the metrics' own, as
        # their values are.
        "ops.metrics.PUBLISHER",
    }
)


def gateway_modules() -> list[types.ModuleType]:
    modules = []
    for package in PACKAGES:
        modules.append(importlib.import_module(package))
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            modules.append(importlib.import_module(info.name))
    return modules


def top_level_names(tree: ast.Module) -> set[str]:
    """Names bound by assignment at module level (imports, functions and classes are not state)."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return {name for name in names if not (name.startswith("__") and name.endswith("__"))}


def constant(value: object) -> bool:
    """Whether `value` cannot change: immutable all the way down."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes | range):
        return True
    if isinstance(value, re.Pattern | PurePath | Enum):
        return True
    if isinstance(value, tuple | frozenset):
        return all(constant(item) for item in value)
    if isinstance(value, types.MappingProxyType):
        return all(constant(key) and constant(item) for key, item in value.items())
    if isinstance(value, type | types.ModuleType) or inspect.isroutine(value):
        return True
    if isinstance(value, types.GenericAlias | types.UnionType) or type(value).__module__ == "typing":
        return True  # a type alias
    if dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen:  # type: ignore[union-attr]
        return all(constant(getattr(value, f.name)) for f in dataclasses.fields(value))
    # Loggers live in logging's own registry; metrics are declarations (see PROCESS_WIDE),
    # prometheus_client's or the hot path's own (ops/local_metrics.py, ops/published_metrics.py).
    return isinstance(value, logging.Logger | MetricWrapperBase | LocalMetric | PublishedMetric | GaugeChild)


def test_no_module_holds_process_state() -> None:
    problems = []
    for module in gateway_modules():
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        for name in sorted(top_level_names(tree)):
            qualified = f"{module.__name__}.{name}"
            if qualified in LOOKUP_TABLES or qualified in PROCESS_WIDE:
                continue
            value = getattr(module, name)
            if not constant(value):
                problems.append(f"{qualified} holds a {type(value).__name__}: state belongs in the Runtime")
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                problems.extend(
                    f"{module.__name__}.{name} is rebound at run time (global, line {node.lineno})"
                    for name in node.names
                    if f"{module.__name__}.{name}" not in PROCESS_WIDE
                )
    assert not problems, "\n".join(problems)


def test_each_runtime_has_its_own_state() -> None:
    """Two runtimes share nothing; each upstream client has the size its settings asked for."""

    async def start_two() -> tuple[Runtime, Runtime]:
        settings = ServerSettings("127.0.0.1", 0, 1024, 1.0, upstream_connections=3)
        return Runtime.start(settings), Runtime.start(dataclasses.replace(settings, upstream_connections=5))

    first, second = asyncio.run(start_two())
    assert first.upstream.limit == 3 and second.upstream.limit == 5
    assert first.catalog.client is first.upstream and second.catalog.client is second.upstream
    first.stats.observe("fast", 200, 0.01, "alice")
    first.stats.add_usage("fast", Usage(input=3, output=4, reported=True), "alice")
    assert first.stats.snapshot()["models"]["fast"]["input_tokens"] == 3
    assert second.stats.snapshot()["models"] == {} and second.stats.snapshot()["keys"] == {}
    first.in_flight += 1
    assert first.bodies.take(10, 100)
    assert second.in_flight == 0 and second.bodies.held == 0
    for attribute in ("upstream", "catalog", "stats", "access_log", "bodies", "metrics"):
        assert getattr(first, attribute) is not getattr(second, attribute)
    first.upstream.close()
    second.upstream.close()
