"""The hot metrics' children cache (ops/metrics.Children): the same children as labels(), bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from ops.metrics import PROMPT_CACHE_TOKENS, Children, RequestMetrics
from ops.stats import MAX_MODEL_LABELS, OTHER, Stats


def _counter() -> Counter:
    return Counter("test_children_total", "A counter of this test.", ["route", "status", "model"],
                   registry=CollectorRegistry())


def test_children_are_the_metrics_own() -> None:
    counter = _counter()
    children = Children(counter)
    children["POST /v1/chat/completions", 200, "fast"].inc()
    children["POST /v1/chat/completions", 200, "fast"].inc(2)
    assert children["POST /v1/chat/completions", 200, "fast"] is counter.labels(
        route="POST /v1/chat/completions", status="200", model="fast"
    )
    assert counter.labels("POST /v1/chat/completions", "200", "fast")._value.get() == 3


def test_a_one_label_metrics_children_are_found_by_the_value_itself() -> None:
    counter = Counter("test_one_label_total", "A counter of this test.", ["route"], registry=CollectorRegistry())
    children = Children(counter)
    assert children["POST /v1/chat/completions"] is counter.labels(route="POST /v1/chat/completions")
    assert list(children) == ["POST /v1/chat/completions"]


def test_children_stay_bounded_past_their_limit() -> None:
    counter = _counter()
    children = Children(counter, limit=10)
    for n in range(50):
        children["route", 200, f"model-{n}"].inc()
    assert len(children) == 10
    assert counter.labels("route", "200", "model-49")._value.get() == 1  # counted all the same


def test_client_chosen_model_names_keep_the_request_cache_small() -> None:
    """Every model label a request counts comes from Stats.model_label, capped: however many
    names clients send, the requests cache holds at most the cap and 'other' per route and status."""
    stats, cache = Stats(), RequestMetrics()
    for n in range(MAX_MODEL_LABELS * 3):
        label = stats.model_label(f"provider/client-model-{n}")
        stats.observe(label, 200, 0.01, None)
        cache.requests["POST /v1/chat/completions", 200, label].inc()
    assert len(cache.requests) == MAX_MODEL_LABELS + 1
    assert ("POST /v1/chat/completions", 200, OTHER) in cache.requests


def test_prompt_cache_children_come_as_three_and_are_the_metrics_own() -> None:
    """An agent target's three prompt-cache children are made together (shown from its first
    answer on, 0 or not), and are the very children labels() gives."""
    cache = RequestMetrics()
    kinds = cache.prompt_cache("test-agent-pc", "provider/model")
    assert kinds is cache.prompt_cache("test-agent-pc", "provider/model")
    assert kinds == tuple(PROMPT_CACHE_TOKENS.labels("test-agent-pc", "provider/model", kind)
                          for kind in ("cached", "cache_write", "uncached"))
