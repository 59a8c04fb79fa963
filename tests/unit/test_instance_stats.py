"""/statsz across pre-fork workers: each worker's file, merged; a dead worker's folded into retired.json."""

from __future__ import annotations

from pathlib import Path

from converters.usage import Usage
from ops.instance_stats import InstanceStats, retire
from ops.stats import Stats


def _stats(requests: int, latency: float, key: str = "alice") -> Stats:
    stats = Stats()
    for _ in range(requests):
        stats.observe("fast", 200, latency, key)
    stats.add_usage("fast", Usage(input=2, output=3, reported=True), key)
    return stats


def _worker(directory: Path, pid: int) -> InstanceStats:
    instance = InstanceStats(directory, started=0.0)
    instance.pid = pid  # as if forked: one InstanceStats per worker process
    return instance


def test_a_worker_sees_the_whole_instance(tmp_path: Path) -> None:
    first, second = _worker(tmp_path, 101), _worker(tmp_path, 102)
    second.write(_stats(3, 0.300), in_flight=1)
    snapshot = first.snapshot(_stats(1, 0.100, key="bob"), in_flight=0)
    assert snapshot["pid"] == 101
    assert [(w["pid"], w["requests"], w["in_flight"]) for w in snapshot["workers"]] == [(101, 1, 0), (102, 3, 1)]
    fast = snapshot["models"]["fast"]
    assert (fast["requests"], fast["input_tokens"], fast["output_tokens"]) == (4, 4, 6)
    assert fast["latency_ms"] == {"p50": 300.0, "p90": 300.0, "p99": 300.0}  # 3 of the 4 samples: 300 ms
    assert snapshot["keys"]["alice"]["requests"] == 3 and snapshot["keys"]["bob"]["requests"] == 1


def test_a_file_is_rewritten_only_after_a_change(tmp_path: Path) -> None:
    worker = _worker(tmp_path, 101)
    stats = _stats(1, 0.1)
    worker.write(stats, in_flight=0)
    (tmp_path / "101.json").unlink()
    worker.write(stats, in_flight=0)
    assert not (tmp_path / "101.json").exists()
    stats.observe("fast", 200, 0.1, None)
    worker.write(stats, in_flight=0)
    assert (tmp_path / "101.json").exists()


def test_a_dead_workers_counters_are_kept_in_retired(tmp_path: Path) -> None:
    _worker(tmp_path, 102).write(_stats(3, 0.3), in_flight=2)
    _worker(tmp_path, 103).write(_stats(2, 0.2), in_flight=0)
    retire(tmp_path, 102)
    retire(tmp_path, 103)
    retire(tmp_path, 104)  # never wrote a file: nothing to fold
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retired.json"]
    snapshot = _worker(tmp_path, 101).snapshot(Stats(), in_flight=0)
    assert snapshot["models"]["fast"]["requests"] == 5 and snapshot["keys"]["alice"]["input_tokens"] == 4
    assert [w["pid"] for w in snapshot["workers"]] == [101]  # the dead are counted, not listed


def test_redaction_counts_add_up_across_workers_living_and_dead(tmp_path: Path) -> None:
    def redacting(email: int, key: int) -> Stats:
        stats = _stats(1, 0.1)
        stats.add_redactions("request", "email", email)
        stats.add_redactions("answer", "openai_key", key)
        return stats

    _worker(tmp_path, 102).write(redacting(2, 1), in_flight=0)
    _worker(tmp_path, 103).write(redacting(3, 0), in_flight=0)
    retire(tmp_path, 103)
    snapshot = _worker(tmp_path, 101).snapshot(redacting(1, 4), in_flight=0)
    assert snapshot["redactions"] == {"answer": {"openai_key": 5}, "request": {"email": 6}}
