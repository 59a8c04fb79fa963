"""Pre-fork workers' hot metrics (ops/published_metrics.py): what they write to prometheus_client's
per-process files, merged by MultiProcessCollector, scrapes exactly as prometheus_client's own
metrics given the same updates; and it is written once the loop pass is over."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ops.published_metrics import GaugeChild, PublishedCounter, PublishedHistogram, Publisher

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Float sums whose value depends on the order of the additions (0.1 + 0.2 + 0.3 != 0.1 + (0.2 + 0.3)).
OBSERVED = (0.1, 0.2, 0.3, 0.0, 0.005, 0.0051, 1, 299.9, 300, 301, 1e9, 0.000123456789, 7.25, 0.7)
ROUTES = ("POST /v1/chat/completions", "GET /healthz")


class Files:
    """Switches prometheus_client to multiprocess values kept in files under a directory of its own."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.monkeypatch = monkeypatch
        self.tmp_path = tmp_path
        self.opened: list[Any] = []

    def use(self, name: str) -> str:
        """From now on, metrics made (and children added) keep their values under tmp_path/name."""
        directory = self.tmp_path / name
        directory.mkdir()
        self.monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        value_class = values.MultiProcessValue()  # its own files, opened in `directory`
        self.monkeypatch.setattr(values, "ValueClass", value_class)
        self.opened.append(value_class)
        return str(directory)

    def close(self) -> None:
        for value_class in self.opened:
            value_class.close_all_files()


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Files]:
    made = Files(monkeypatch, tmp_path)
    yield made
    made.close()


def scrape(directory: str) -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    return generate_latest(registry)


def declare() -> tuple[Counter, Histogram, Gauge]:
    registry = CollectorRegistry()
    return (Counter("test_requests_total", "Requests.", ["route", "status", "model"], registry=registry),
            Histogram("test_seconds", "Time taken.", ["route"], buckets=BUCKETS, registry=registry),
            Gauge("test_in_flight", "Requests now.", multiprocess_mode="livesum", registry=registry))


def update(counter: Any, histogram: Any, gauge: Any, n: int) -> None:
    """The n-th request's updates, the same whoever counts them."""
    gauge.inc()
    route = ROUTES[n % 2]
    counter.labels(route, 200 if n % 3 else 499, "fast" if n % 4 else 'a "quoted"\\name\n').inc()
    counter.labels(route, 200, "tokens").inc(n * 7)
    histogram.labels(route).observe(OBSERVED[n % len(OBSERVED)])
    if n % 5:
        gauge.dec()


def test_published_files_scrape_as_prometheus_clients_own(files: Files) -> None:
    theirs = files.use("theirs")
    counter, histogram, gauge = declare()
    for n in range(40):
        update(counter, histogram, gauge, n)

    ours = files.use("ours")
    counter, histogram, gauge = declare()
    publisher = Publisher()
    published = (PublishedCounter(counter, publisher), PublishedHistogram(histogram, publisher, BUCKETS),
                 GaugeChild(gauge, publisher))

    async def serve() -> None:
        n = 0
        for batch in (1, 1, 7, 2, 13, 1, 15):  # requests finished per loop pass
            for _ in range(batch):
                update(*published, n)
                n += 1
            await asyncio.sleep(0)  # the pass ends

    asyncio.run(serve())
    assert scrape(ours) == scrape(theirs)
    assert b"test_in_flight 8.0" in scrape(ours)
    # A dead worker's live gauges leave /metrics; its counters and histograms stay.
    mark_process_dead(os.getpid(), theirs)
    mark_process_dead(os.getpid(), ours)
    assert scrape(ours) == scrape(theirs)
    assert b"test_in_flight" not in scrape(ours) and b"test_seconds_count" in scrape(ours)


def test_a_pass_is_written_when_it_ends(files: Files) -> None:
    directory = files.use("ours")
    counter, histogram, _ = declare()
    publisher = Publisher()
    requests = PublishedCounter(counter, publisher).labels("GET /healthz", 200, "")
    seconds = PublishedHistogram(histogram, publisher, BUCKETS).labels("GET /healthz")

    async def serve() -> None:
        for _ in range(3):
            requests.inc()
            seconds.observe(0.02)
        assert b'test_requests_total{model="",route="GET /healthz",status="200"} 0.0' in scrape(directory)
        await asyncio.sleep(0)
        text = scrape(directory)
        assert b'test_requests_total{model="",route="GET /healthz",status="200"} 3.0' in text
        assert b'test_seconds_bucket{le="0.025",route="GET /healthz"} 3.0' in text
        requests.inc()
        publisher.publish()  # as at stop, or before a scrape: now
        assert b'test_requests_total{model="",route="GET /healthz",status="200"} 4.0' in scrape(directory)

    asyncio.run(serve())


def test_without_an_event_loop_updates_are_written_at_once(files: Files) -> None:
    directory = files.use("ours")
    counter, _, gauge = declare()
    publisher = Publisher()
    PublishedCounter(counter, publisher).labels("GET /healthz", 200, "").inc(2)
    GaugeChild(gauge, publisher).inc()
    text = scrape(directory)
    assert b'test_requests_total{model="",route="GET /healthz",status="200"} 2.0' in text
    assert b"test_in_flight 1.0" in text


def test_counts_only_grow() -> None:
    counter = Counter("test_total", "Counted.", ["kind"], registry=CollectorRegistry())
    child = PublishedCounter(counter, Publisher()).labels("a")
    with pytest.raises(ValueError, match="non-negative"):
        child.inc(-1)
    with pytest.raises(ValueError, match="label count"):
        PublishedCounter(counter, Publisher()).labels("a", "b")
