"""Diagnostics of the running process for /debug: CPU profiles, heap snapshots, stack dumps.

The Python counterpart of Go's net/http/pprof, standard library only. A profile runs
beside the event loop (cProfile hooked on the loop thread, or a sampler thread reading
the loop thread's frames) while the caller awaits, so the gateway keeps serving while
it is measured. Coroutines here must run on the event loop: its thread is the one profiled.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import marshal
import os
import selectors
import sys
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any

MAX_SECONDS = 60.0
SAMPLE_HZ = 100
# Frames kept per allocation: enough for group=traceback, cheap enough to leave on for a while.
HEAP_FRAMES = 8
MAX_HEAP_TOP = 1000

# One profile at a time: two would measure each other (and cProfile has one hook per thread).
# Module-level, not in the Runtime: what it guards (the profile hook, the loop thread's frames)
# is the interpreter's, so even two runtimes in one process must not profile at once.
_profiling = threading.Lock()

# tracemalloc's own bookkeeping and the import machinery are noise in a heap report.
_HEAP_FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class ProfilerBusy(RuntimeError):
    """Another profile is running."""


def profile_running() -> bool:
    return _profiling.locked()


@lru_cache(maxsize=4096)
def short_path(filename: str) -> str:
    """`filename` relative to the sys.path entry holding it ('handlers/chat.py', 'tornado/web.py'),
    so that reports read the same on every machine."""
    best = filename
    for entry in sys.path:
        prefix = os.path.join(os.path.abspath(entry or "."), "")
        if filename.startswith(prefix) and len(filename) - len(prefix) < len(best):
            best = filename[len(prefix) :]
    return best


async def _wait(seconds: float, cancel: asyncio.Event | None) -> None:
    """Sleep `seconds`, or less once `cancel` is set (the client went away: stop measuring)."""
    if cancel is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancel.wait(), seconds)


# -- deterministic: cProfile --------------------------------------------------------------


async def cpu_profile(seconds: float, cancel: asyncio.Event | None = None) -> bytes:
    """cProfile the event-loop thread for `seconds`: the marshalled stats `pstats.Stats(path)` loads.

    cProfile hooks only the thread that enables it; awaited on the loop, that is the thread
    serving every request, which is the one that matters.
    """
    if not _profiling.acquire(blocking=False):
        raise ProfilerBusy
    try:
        profiler = cProfile.Profile()
        try:
            profiler.enable()
        except ValueError as exc:  # 3.12+: another tool holds the profiling hook
            raise ProfilerBusy(str(exc)) from exc
        try:
            await _wait(seconds, cancel)
        finally:
            profiler.disable()
        profiler.create_stats()
        return marshal.dumps(profiler.stats)  # what Profile.dump_stats writes
    finally:
        _profiling.release()


# -- statistical: a sampler thread ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collapsed:
    """Folded stacks ('root;...;leaf count' lines, for flamegraph.pl and speedscope)."""

    text: str
    samples: int  # all samples taken
    idle_samples: int  # of which the loop was waiting for work


def _idle(code: CodeType) -> bool:
    """The loop thread is waiting for work, not using CPU: blocked in asyncio's selector, or
    (uvloop, which waits in libuv's C) with no Python frame above the one running the loop."""
    if code.co_name == "select":
        return code.co_filename == selectors.__file__
    return code.co_name == "run" and code.co_filename == asyncio.runners.__file__


class _Sampler(threading.Thread):
    """Reads one thread's stack `hz` times a second; keeps code objects only, never frames."""

    def __init__(self, target: int, hz: int, keep_idle: bool) -> None:
        super().__init__(name="gateway-profiler", daemon=True)
        self.target = target
        self.interval = 1.0 / hz
        self.keep_idle = keep_idle
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.stacks: Counter[tuple[CodeType, ...]] = Counter()
        self.samples = 0
        self.idle_samples = 0

    def run(self) -> None:
        due = time.monotonic()
        while True:
            due = max(due + self.interval, time.monotonic())
            if self.halt.wait(due - time.monotonic()):
                return
            frame: FrameType | None = sys._current_frames().get(self.target)
            if frame is None:
                return  # the thread has ended
            codes: list[CodeType] = []
            while frame is not None:
                codes.append(frame.f_code)
                frame = frame.f_back
            idle = _idle(codes[0])
            with self.lock:
                self.samples += 1
                self.idle_samples += idle
                if self.keep_idle or not idle:
                    self.stacks[tuple(reversed(codes))] += 1


def _label(code: CodeType) -> str:
    text = f"{code.co_qualname} ({short_path(code.co_filename)}:{code.co_firstlineno})"
    return text.replace(";", ":").replace("\n", " ")


def fold(stacks: Counter[tuple[CodeType, ...]]) -> str:
    """Stacks (root first) → collapsed text, most frequent first; one frame per function."""
    labels: dict[CodeType, str] = {}

    def label(code: CodeType) -> str:
        found = labels.get(code)
        if found is None:
            found = labels[code] = _label(code)
        return found

    return "".join(
        ";".join(label(code) for code in stack) + f" {count}\n" for stack, count in stacks.most_common()
    )


async def sampled_profile(
    seconds: float, cancel: asyncio.Event | None = None, hz: int = SAMPLE_HZ, keep_idle: bool = False
) -> Collapsed:
    """Sample the event-loop thread's stack for `seconds`, `hz` times a second.

    Wall-clock samples; those where the loop sat waiting for work are counted but left out
    unless `keep_idle`, so the graph shows where the CPU went (as pprof's and py-spy's do).
    """
    if not _profiling.acquire(blocking=False):
        raise ProfilerBusy
    try:
        sampler = _Sampler(threading.get_ident(), hz, keep_idle)
        sampler.start()
        try:
            await _wait(seconds, cancel)
        finally:
            sampler.halt.set()
            sampler.join(timeout=1.0)  # it wakes on halt: blocks the loop for microseconds
        with sampler.lock:
            stacks, samples, idle = Counter(sampler.stacks), sampler.samples, sampler.idle_samples
        return Collapsed(fold(stacks), samples, idle)
    finally:
        _profiling.release()


# -- heap: tracemalloc ------------------------------------------------------------------------


def heap_tracing() -> bool:
    return tracemalloc.is_tracing()


def heap_report(top: int = 25, group: str = "lineno") -> dict[str, Any]:
    """The `top` allocation sites still alive, by line (or by whole traceback).

    Tracing costs memory and time, so it is off until asked for: the first call starts it
    (and says so, with no data yet); later calls show what was allocated since. Safe to run
    in a worker thread, keeping the snapshot's grouping off the event loop.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start(HEAP_FRAMES)
        return {
            "tracing": True,
            "tracing_started": True,
            "frames": HEAP_FRAMES,
            "note": "tracemalloc was not tracing and has just been started: call again for data",
            "top": [],
        }
    snapshot = tracemalloc.take_snapshot().filter_traces(_HEAP_FILTERS)
    statistics = snapshot.statistics(group)
    current, peak = tracemalloc.get_traced_memory()
    entries = []
    for stat in statistics[:top]:
        frame = stat.traceback[-1]  # the most recent frame: where the allocation happened
        where = f"{short_path(frame.filename)}:{frame.lineno}"
        entry: dict[str, Any] = {
            "where": where,
            "file": short_path(frame.filename),
            "line": frame.lineno,
            "size": stat.size,
            "count": stat.count,
            "average": stat.size // stat.count if stat.count else 0,
        }
        if group == "traceback":
            entry["traceback"] = [f"{short_path(f.filename)}:{f.lineno}" for f in reversed(stat.traceback)]
        entries.append(entry)
    return {
        "tracing": True,
        "tracing_started": False,
        "frames": tracemalloc.get_traceback_limit(),
        "group": group,
        "traced_bytes": current,
        "peak_traced_bytes": peak,
        "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory(),
        "total_size": sum(stat.size for stat in statistics),
        "total_count": sum(stat.count for stat in statistics),
        "sites": len(statistics),
        "top": entries,
    }


def heap_stop() -> dict[str, Any]:
    """Stop tracing and free its traces."""
    was = tracemalloc.is_tracing()
    tracemalloc.stop()
    return {"tracing": False, "stopped": was}


# -- stacks: threads and tasks ----------------------------------------------------------------


def _await_chain(task: asyncio.Task[Any]) -> list[FrameType]:
    """The frames a task is suspended in, outermost first, following cr_await down the chain.

    (Task.get_stack shows only the outermost coroutine of a suspended task.)
    """
    coro: Any = task.get_coro()
    if task is asyncio.current_task():
        # Running: its inner frames are on this thread's stack, below the coroutine's own frame.
        root = getattr(coro, "cr_frame", None)
        frames: list[FrameType] = []
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            frames.append(frame)
            if frame is root:
                break
            frame = frame.f_back
        return frames[::-1]
    frames = []
    for _ in range(256):  # a cycle would be a bug elsewhere; do not hang the dump on it
        frame = _attribute(coro, ("cr_frame", "gi_frame", "ag_frame"))
        if frame is None:
            break
        frames.append(frame)
        coro = _attribute(coro, ("cr_await", "gi_yieldfrom", "ag_await"))
    return frames


def _attribute(obj: Any, names: tuple[str, ...]) -> Any:
    """The first of `names` that `obj` has and is not None: coroutines, generators and async
    generators name the same things differently."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _format_frames(frames: list[FrameType]) -> str:
    summary = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
    return "".join(summary.format())


def stack_dump() -> str:
    """Every thread's stack and every asyncio task's await chain, as text: a goroutine dump.

    Call on the event loop (it lists that loop's tasks).
    """
    loop_thread = threading.get_ident()
    frames = sys._current_frames()
    threads = {thread.ident: thread for thread in threading.enumerate()}
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = [
        f"pid {os.getpid()}, python {sys.version.split()[0]}, at {now}:"
        f" {len(frames)} threads, {len(tasks)} asyncio tasks\n"
    ]
    for ident in sorted(frames, key=lambda ident: (ident != loop_thread, ident)):
        thread = threads.get(ident)
        name = thread.name if thread is not None else "(unknown)"
        notes = ["event loop"] if ident == loop_thread else []
        if thread is not None and thread.daemon:
            notes.append("daemon")
        out.append(f"\nthread {name} (ident {ident}{''.join(', ' + note for note in notes)}):\n")
        out.append(_format_frames(_thread_frames(frames[ident])))
    del frames
    for task in tasks:
        out.append(f"\ntask {task.get_name()}: {task!r}\n")
        out.append(_format_frames(_await_chain(task)))
    return "".join(out)


def _thread_frames(frame: FrameType | None) -> list[FrameType]:
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames[::-1]
