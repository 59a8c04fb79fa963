"""Pre-fork workers' hot metrics: counted in plain numbers, written to the files once per loop pass.

With workers, prometheus_client keeps each value in the process's file: every update takes
its lock, checks the pid and writes the mmap, about 14 writes and 25 µs of CPU per request.
Here a request only adds to a plain number and, the first time in a pass that anything
changed, schedules one `call_soon` that writes what changed to prometheus_client's own
children: a counter's accumulated delta, a histogram's buckets that grew and its sum, a
gauge's value. Under load a pass finishes several requests, which share its writes; and a
request's updates reach the file in the pass right after the one that finished it.

The files keep prometheus_client's own keys, written by its own children (MultiProcessCollector
merges them as before: same names, labels, buckets, the gauges' files by multiprocess mode, so a
dead worker's live gauges still go with it). prometheus_client has no public way to add several
observations to a histogram at once: its bucket and sum values (`_buckets`, `_sum`; the version
is pinned in requirements.txt) are written directly.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram


class Pending(Protocol):
    """A child with changes not yet written."""

    def publish(self) -> None: ...


class Publisher:
    """The children changed since the last write, and that write (one per loop pass)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: list[Pending] = []

    def changed(self, child: Pending) -> None:
        """`child` has changes (called once per pass by each child that has)."""
        if self.pending:  # the pass's write is scheduled
            self.pending.append(child)
            return
        self.pending.append(child)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script): at once
            self.publish()
            return
        loop.call_soon(self.publish)

    def publish(self) -> None:
        """Write every pending change now (also at stop, and before a scrape reads the files)."""
        pending, self.pending = self.pending, []
        for child in pending:
            child.publish()


class _Child:
    """What every child holds: prometheus_client's child it writes to, and whether it has
    changes that the pass's write has yet to take."""

    __slots__ = ("target", "publisher", "dirty")

    def __init__(self, target: Counter | Histogram | Gauge, publisher: Publisher) -> None:
        self.target = target
        self.publisher = publisher
        self.dirty = False

    def _changed(self) -> None:
        """The first change since the last write (callers check `dirty`: a call only then)."""
        self.dirty = True
        self.publisher.changed(self)


class CounterChild(_Child):
    """One label set's count since the last write."""

    __slots__ = ("delta",)
    target: Counter

    def __init__(self, target: Counter, publisher: Publisher) -> None:
        super().__init__(target, publisher)
        self.delta: float = 0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.delta += amount
        if not self.dirty:
            self._changed()

    def publish(self) -> None:
        """One inc by the sum of the pass's increments (whole numbers here: the same total)."""
        self.dirty = False
        self.target.inc(self.delta)
        self.delta = 0


class HistogramChild(_Child):
    """One label set's observations since the last write: a count per bucket, and the running sum."""

    __slots__ = ("bounds", "counts", "sum")
    target: Histogram

    def __init__(self, target: Histogram, publisher: Publisher, bounds: list[float]) -> None:
        super().__init__(target, publisher)
        self.bounds = bounds  # the metric's, +Inf last
        self.counts = [0] * len(bounds)
        # Added to as prometheus_client adds each observation, so that the sum written is the very
        # float its own observe() would have written.
        self.sum: float = target._sum.get()

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bound >= amount
        self.sum += amount
        if not self.dirty:
            self._changed()

    def publish(self) -> None:
        self.dirty = False
        counts, buckets = self.counts, self.target._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        self.target._sum.set(self.sum)


class GaugeChild(_Child):
    """A gauge without labels that requests move up and down (the requests in flight)."""

    __slots__ = ("value",)
    target: Gauge

    def __init__(self, target: Gauge, publisher: Publisher) -> None:
        super().__init__(target, publisher)
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount
        if not self.dirty:
            self._changed()

    def dec(self, amount: float = 1) -> None:
        self.value -= amount
        if not self.dirty:
            self._changed()

    def publish(self) -> None:
        self.dirty = False
        self.target.set(self.value)


Child = TypeVar("Child", CounterChild, HistogramChild)


class PublishedMetric(Generic[Child]):
    """A labelled prometheus_client metric whose children requests update through ours.

    Declared at module level as the metric it wraps (ops/metrics.py says why)."""

    def __init__(self, metric: Counter | Histogram, publisher: Publisher) -> None:
        self.metric = metric
        self.publisher = publisher
        self.children: dict[tuple[str, ...], Child] = {}

    def labels(self, *values: object) -> Child:
        """The child of these label values (made on first use, with prometheus_client's own)."""
        key = tuple(str(value) for value in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._child(self.metric.labels(*key))
        return child

    def _child(self, target: Counter | Histogram) -> Child:
        raise NotImplementedError


class PublishedCounter(PublishedMetric[CounterChild]):
    def _child(self, target: Counter) -> CounterChild:
        return CounterChild(target, self.publisher)


class PublishedHistogram(PublishedMetric[HistogramChild]):
    def __init__(self, metric: Histogram, publisher: Publisher, buckets: Sequence[float]) -> None:
        """`buckets` are those `metric` was declared with (finite, ascending)."""
        super().__init__(metric, publisher)
        self.bounds = [*map(float, buckets), float("inf")]

    def _child(self, target: Histogram) -> HistogramChild:
        return HistogramChild(target, self.publisher, self.bounds)
