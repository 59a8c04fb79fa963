"""The hot path's own counters and histograms (ops/local_metrics.py) scrape exactly as
prometheus_client's Counter and Histogram do, given the same updates."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ops import metrics
from ops.local_metrics import LocalCounter, LocalHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OBSERVED = (0.0, 0.005, 0.0051, 0.3, 1, 299.9, 300, 301, 1e9, 0.000123456789, 7.25)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kinds stamp each child's `_created` with time.time(): the same stamp for both."""
    monkeypatch.setattr(time, "time", lambda: 1700000000.125)


def test_a_counter_scrapes_as_prometheus_clients() -> None:
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    labels = ["route", "status", "model"]
    stock = Counter("test_requests_total", "Requests, by route, status and model.", labels, registry=theirs)
    local = LocalCounter("test_requests_total", "Requests, by route, status and model.", labels, ours)
    updates = [(("POST /v1/chat", 200, "fast"), 1), (("POST /v1/chat", 499, 'a "quoted"\\name\n'), 1),
               (("GET /healthz", 200, ""), 3), (("POST /v1/chat", 200, "fast"), 2.5)]
    for values, amount in updates:
        stock.labels(*values).inc(amount)
        local.labels(*values).inc(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_histogram_scrapes_as_prometheus_clients() -> None:
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    stock = Histogram("test_seconds", "Time taken.", ["route"], buckets=BUCKETS, registry=theirs)
    local = LocalHistogram("test_seconds", "Time taken.", ["route"], ours, BUCKETS)
    for n, amount in enumerate(OBSERVED):
        for route in ("POST /v1/chat", "GET /healthz")[: 1 + n % 2]:
            stock.labels(route).observe(amount)
            local.labels(route).observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_nothing_observed_scrapes_as_prometheus_clients() -> None:
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    Counter("test_total", "Counted.", ["kind"], registry=theirs)
    Histogram("test_seconds", "Timed.", ["kind"], buckets=BUCKETS, registry=theirs)
    LocalCounter("test_total", "Counted.", ["kind"], ours)
    LocalHistogram("test_seconds", "Timed.", ["kind"], ours, BUCKETS)
    assert generate_latest(ours) == generate_latest(theirs)


def test_labels_are_checked_and_counts_only_grow() -> None:
    local = LocalCounter("test_total", "Counted.", ["a", "b"], CollectorRegistry())
    with pytest.raises(ValueError, match="label count"):
        local.labels("one")
    with pytest.raises(ValueError, match="non-negative"):
        local.labels("one", "two").inc(-1)
    assert local.labels("one", 2) is local.labels("one", "2")  # values are strings, as labels() makes them


def test_a_single_process_counts_requests_without_prometheus_clients_locks() -> None:
    """The gateway's tests run it as one process (no PROMETHEUS_MULTIPROC_DIR)."""
    assert metrics.MULTIPROCESS_DIR is None
    for metric in (metrics.REQUESTS, metrics.TOKENS, metrics.KEY_TOKENS, metrics.PROMPT_CACHE_TOKENS):
        assert isinstance(metric, LocalCounter)
    for metric in (metrics.REQUEST_SECONDS, metrics.FIRST_BYTE_SECONDS, metrics.UPSTREAM_SECONDS):
        assert isinstance(metric, LocalHistogram)
