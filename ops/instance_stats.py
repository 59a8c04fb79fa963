"""/statsz for an instance of pre-fork workers: each worker's counters in a file, merged on read.

Each worker rewrites `<directory>/<pid>.json` (write, then rename: a reader never sees
half a file) about once a second when its counters changed; the worker that answers
/statsz merges its own live counters with the other workers' files. When a worker dies,
the supervisor folds its file into `retired.json`, so the instance's totals never go
down and the directory holds one file per living worker and one more.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import orjson

from ops.stats import Counters, Stats, summed_redactions

WRITE_INTERVAL = 1.0  # seconds: how stale another worker's counters may be on /statsz
_RETIRED = "retired.json"


class InstanceStats:
    """One worker's side: write its own file, read and merge everyone's."""

    def __init__(self, directory: Path, started: float) -> None:
        self.directory = directory
        self.started = started  # when the supervisor started: the instance's uptime
        self.pid = os.getpid()
        self.written = -1  # Stats.changes when last written

    def write(self, stats: Stats, in_flight: int) -> None:
        """This worker's file, when something changed since the last one (in_flight aside)."""
        if stats.changes == self.written:
            return
        self.written = stats.changes
        _write_atomically(self.directory / f"{self.pid}.json", self._document(stats, in_flight))

    def snapshot(self, stats: Stats, in_flight: int) -> dict[str, Any]:
        """The whole instance: this worker live, the others as of their last file."""
        documents = [self._document(stats, in_flight)]
        for path in self.directory.glob("*.json"):
            if path.name != f"{self.pid}.json":
                document = _read(path)
                if document is not None:
                    documents.append(document)
        workers = sorted(
            ({"pid": d["pid"], "requests": d["requests"], "in_flight": d["in_flight"],
              "updated": d["updated"]} for d in documents if d["pid"] is not None),
            key=lambda w: w["pid"],
        )
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "pid": self.pid,
            "workers": workers,
            **_merged(document["stats"] for document in documents),
        }

    def _document(self, stats: Stats, in_flight: int) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "updated": round(time.time(), 3),
            "in_flight": in_flight,
            "requests": sum(c.requests for c in stats.by_model.values()),
            "stats": stats.export(),
        }


def retire(directory: Path, pid: int) -> None:
    """Fold a dead worker's file into retired.json (the supervisor calls this)."""
    path = directory / f"{pid}.json"
    document = _read(path)
    if document is None:
        return
    retired = _read(directory / _RETIRED) or {"pid": None, "requests": 0, "in_flight": 0, "stats": {}}
    merged = {
        section: {name: Counters.merged(parts).export() for name, parts in _grouped(
            [retired["stats"], document["stats"]], section).items()}
        for section in ("models", "keys")
    }
    merged["redactions"] = summed_redactions([retired["stats"], document["stats"]])
    retired.update(requests=retired["requests"] + document["requests"], stats=merged)
    _write_atomically(directory / _RETIRED, retired)
    path.unlink()


def _merged(exports: Any) -> dict[str, Any]:
    exports = list(exports)
    return {
        **{section: {name: Counters.merged(parts).summary()
                     for name, parts in sorted(_grouped(exports, section).items())}
           for section in ("models", "keys")},
        "redactions": summed_redactions(exports),
    }


def _grouped(exports: list[dict[str, Any]], section: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for export in exports:
        for name, counters in export.get(section, {}).items():
            groups.setdefault(name, []).append(counters)
    return groups


def _read(path: Path) -> dict[str, Any] | None:
    """A worker's file, or None when it is gone (that worker just died and was retired)."""
    with contextlib.suppress(FileNotFoundError):
        return orjson.loads(path.read_bytes())
    return None


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_bytes(orjson.dumps(document))
    os.replace(partial, path)
