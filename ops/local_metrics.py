"""Counters and histograms of our own for the metrics that every request updates.

prometheus_client guards each value with a lock and checks its arguments on every call:
four Python calls and a lock per increment, several microseconds per request, for values
that only the event loop's thread ever touches. Here a child is a plain number (or a list
of bucket counts) updated in one Python call, and the metric is a collector that turns
its children, when scraped, into the very samples prometheus_client's own Counter and
Histogram give: same names, labels, `_created` series, bucket bounds and order, so
/metrics reads the same.

One process only: pre-fork workers keep their values in prometheus_client's per-process
files, which ops/published_metrics.py writes once per event-loop pass.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# prometheus_client's own switch for the `_created` series, read as it reads it.
_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")

Child = TypeVar("Child", "CounterChild", "HistogramChild")


class CounterChild:
    """One label set's count."""

    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class HistogramChild:
    """One label set's observations: a count per bucket (not cumulative) and their sum."""

    __slots__ = ("bounds", "counts", "sum", "created")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds  # the metric's, +Inf last
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bound >= amount
        self.sum += amount


class LocalMetric(Generic[Child]):
    """A metric's children by their label values (as strings, the order of `labelnames`).

    Declared at module level as prometheus_client's metrics are (ops/metrics.py says why)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], Child] = {}
        registry.register(self)

    def labels(self, *values: object) -> Child:
        """The child of these label values (made on first use), as prometheus_client's labels()."""
        if len(values) != len(self.labelnames):
            raise ValueError("Incorrect label count")
        key = tuple(str(value) for value in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._child()
        return child

    def _child(self) -> Child:
        raise NotImplementedError


class LocalCounter(LocalMetric[CounterChild]):
    """A labelled counter (`name` ends in _total, as prometheus_client's Counter is declared)."""

    def _child(self) -> CounterChild:
        return CounterChild()

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(values, child.value, child.created if _CREATED else None)
        return [family]


class LocalHistogram(LocalMetric[HistogramChild]):
    """A labelled histogram over `buckets` (finite, ascending; +Inf is added)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.bounds = [*map(float, buckets), float("inf")]
        self.bucket_names = [floatToGoString(bound) for bound in self.bounds]
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            cumulative, total = [], 0.0
            for name, count in zip(self.bucket_names, child.counts, strict=True):
                total += count
                cumulative.append((name, total))
            family.add_metric(values, cumulative, child.sum)
            if _CREATED:
                family.add_sample(self.name + "_created", dict(zip(self.labelnames, values, strict=True)),
                                  child.created)
        return [family]
