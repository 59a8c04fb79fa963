"""/debug/...: pprof for the gateway (CPU profile, heap, stacks), on `debug.profiling_enabled`.

Off, every path answers the same 404 as an unknown route, so nothing tells that the
route exists. Profiles await while they measure: the gateway keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable

import orjson

from dsl.handler_rules import HandlerRules
from handlers.base import GatewayHandler
from ops import profiling

_FORMATS = ("pstats", "collapsed")
_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


class DebugHandler(GatewayHandler):
    """GET {prefix}{kind}: '' (index), 'profile', 'heap', 'stacks'."""

    rules = HandlerRules("debug", admin=True)
    cancel: asyncio.Event | None = None

    async def get(self, kind: str = "") -> None:
        if not self.table.profiling_enabled:
            return self._not_found()
        page: Callable[[str], Awaitable[None]] | None = {
            "": self._index,
            "profile": self._profile,
            "heap": self._heap,
            "stacks": self._stacks,
        }.get(kind.strip("/"))
        if page is None:
            return self._not_found()
        self.set_header("Cache-Control", "no-store")
        await page(self.request.path[: len(self.request.path) - len(kind)])

    def on_connection_close(self) -> None:
        """The client left: end a running profile now rather than measure for nobody."""
        super().on_connection_close()
        if self.cancel is not None:
            self.cancel.set()

    def _not_found(self) -> None:
        """Word for word what an unmatched path answers."""
        self.fail(404, f"no route for {self.request.method} {self.request.path}", "not_found")

    def _json(self, document: object) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(document))

    def _flag(self, name: str) -> bool | None:
        """A boolean query argument; None (after a 400) when it is neither."""
        value = self.get_query_argument(name, "").lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        self.fail(400, f"{name} must be 1 or 0, not {value!r}")
        return None

    # -- pages -------------------------------------------------------------------------

    async def _index(self, prefix: str) -> None:
        self._json(
            {
                "pid": os.getpid(),
                "profile_running": profiling.profile_running(),
                "heap_tracing": profiling.heap_tracing(),
                "endpoints": {
                    f"{prefix}profile": (
                        f"CPU profile of the event loop. seconds=5 (at most {profiling.MAX_SECONDS:g}); "
                        "format=pstats: a cProfile dump for pstats.Stats or snakeviz; format=collapsed: "
                        f"stacks sampled {profiling.SAMPLE_HZ} times a second, folded for flamegraph.pl "
                        "or speedscope (idle=1 keeps those of the idle loop). One at a time."
                    ),
                    f"{prefix}heap": (
                        "tracemalloc: the top allocation sites alive. top=25, group=lineno|traceback; "
                        "the first call starts tracing, stop=1 stops it."
                    ),
                    f"{prefix}stacks": "Every thread's stack and every asyncio task's await chain, as text.",
                },
            }
        )

    async def _profile(self, prefix: str) -> None:
        raw = self.get_query_argument("seconds", "5")
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= profiling.MAX_SECONDS:  # NaN fails too
            return self.fail(400, f"seconds must be a number above 0 and at most {profiling.MAX_SECONDS:g}")
        fmt = self.get_query_argument("format", "pstats")
        if fmt not in _FORMATS:
            return self.fail(400, f"format must be one of {', '.join(_FORMATS)}, not {fmt!r}")
        keep_idle = self._flag("idle")
        if keep_idle is None:
            return None
        self.cancel = asyncio.Event()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"gateway-{os.getpid()}-{stamp}"
        try:
            if fmt == "pstats":
                data = await profiling.cpu_profile(seconds, self.cancel)
            else:
                folded = await profiling.sampled_profile(seconds, self.cancel, keep_idle=keep_idle)
        except profiling.ProfilerBusy:
            return self.fail(409, "a profile is already running: try when it has ended", "profile_running")
        if self.client_gone:
            return None
        if fmt == "pstats":
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f'attachment; filename="{name}.pstats"')
            self.finish(data)
            return None
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", f'inline; filename="{name}.collapsed.txt"')
        self.set_header("X-Profile-Samples", str(folded.samples))
        self.set_header("X-Profile-Idle-Samples", str(folded.idle_samples))
        self.finish(folded.text)
        return None

    async def _heap(self, prefix: str) -> None:
        stop = self._flag("stop")
        if stop is None:
            return None
        if stop:
            return self._json(profiling.heap_stop())
        try:
            top = int(self.get_query_argument("top", "25"))
        except ValueError:
            top = 0
        if not 0 < top <= profiling.MAX_HEAP_TOP:
            return self.fail(400, f"top must be a whole number from 1 to {profiling.MAX_HEAP_TOP}")
        group = self.get_query_argument("group", "lineno")
        if group not in ("lineno", "traceback"):
            return self.fail(400, f"group must be lineno or traceback, not {group!r}")
        # Grouping a large snapshot takes a while: in a thread, the loop keeps its turns.
        self._json(await asyncio.to_thread(profiling.heap_report, top, group))

    async def _stacks(self, prefix: str) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(profiling.stack_dump())
