"""The serving process: listen, reload on SIGHUP, drain on SIGTERM, tell systemd each step.

Alone (server.workers: 1) it answers to systemd itself; as one of several pre-fork
workers it serves the supervisor's sockets and tells the supervisor instead
(server/supervisor.py), which alone talks to systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import uvloop

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.table import Table
from ops import metrics, sdnotify
from ops.instance_stats import WRITE_INTERVAL, InstanceStats
from runtime.process import Runtime
from server.app import TableRouter
from server.http1 import Listener

log = logging.getLogger("gateway")
# Settings bound when the listener starts; a reload keeps the running values.
RESTART_ONLY = (
    "listen_host", "listen_port", "upstream_connections", "idle_timeout", "max_connections", "workers",
)
# The cycle collector's youngest generation is walked once this many more container objects
# were made than freed (CPython's default: 700, a few requests' worth). A request leaves no
# cycle behind (an ended exchange lets go of its callbacks), but every walk moves the objects
# of the requests in flight to the older generations, walked again later: at 700 the
# collector took a tenth of the CPU under load, at 5,000 about half as much. With a thousand
# streams open, a walk at 5,000 still met 15,000 to 50,000 objects of the streams in flight (10 to
# 30 ms each, about 3 % of the CPU by perf); at 20,000 none came in a steady run, and garbage
# in cycles, should a request leave any, is still collected by then.
YOUNG_GENERATION_THRESHOLD = 20_000


class Announcer(Protocol):
    """Who hears of this process's steps: systemd, or the supervisor of the workers."""

    def ready(self, status: str) -> None: ...
    def reloading(self) -> None: ...
    def reloaded(self, ok: bool, status: str) -> None: ...
    def stopping(self) -> None: ...
    def watchdog_interval(self) -> float | None: ...  # how often to say alive (twice per); None: never
    def alive(self) -> None: ...
    def when_orphaned(self, stop: Callable[[], None]) -> None: ...  # `stop` once the supervisor is gone


class Systemd:
    """A process serving alone tells systemd, and counts its own reloads."""

    def ready(self, status: str) -> None:
        sdnotify.ready(status)

    def reloading(self) -> None:
        sdnotify.reloading()

    def reloaded(self, ok: bool, status: str) -> None:
        metrics.RELOADS.labels(result="success" if ok else "failure").inc()
        sdnotify.ready(status)

    def stopping(self) -> None:
        sdnotify.stopping()

    def watchdog_interval(self) -> float | None:
        return sdnotify.watchdog_interval()

    def alive(self) -> None:
        sdnotify.watchdog_ping()

    def when_orphaned(self, stop: Callable[[], None]) -> None:
        pass  # systemd outlives us


def restart_only_changes(old: Table, new: Table) -> None:
    """Warn that the settings bound at start that the file changes keep their running values."""
    changed = dict.fromkeys(  # in the file's words: listen_host and listen_port are server.listen
        f"server.{name.partition('_')[0] if name.startswith('listen_') else name}"
        for name in RESTART_ONLY if getattr(old.server, name) != getattr(new.server, name)
    )
    if changed:
        log.warning("%s: changed in the file, but take effect only on restart", ", ".join(changed))


class Gateway:
    """One serving process: its runtime and its live table."""

    def __init__(
        self,
        config_path: str,
        table: Table,
        announce: Announcer | None = None,
        sockets: list[socket.socket] | None = None,
        instance: InstanceStats | None = None,
    ) -> None:
        """Called on the running event loop, which the runtime's upstream client binds to.

        A pre-fork worker gets the supervisor's listening `sockets`, its `announce`, and
        the `instance` files that make /statsz the whole instance's.
        """
        self.config_path = config_path
        self.announce = announce or Systemd()
        self.sockets = sockets
        self.runtime = Runtime.start(table.server, instance)
        self.router = TableRouter(table, self.runtime)
        self.stopping = asyncio.Event()
        self.server: Listener | None = None

    async def start(self) -> None:
        settings = self.router.table.server
        self.server = Listener(
            self.router, max_connections=settings.max_connections, idle_timeout=settings.idle_timeout
        )
        if self.sockets is None:
            await self.server.listen(settings.listen_port, settings.listen_host)
            log.info("listening on %s:%d (%s)", settings.listen_host, settings.listen_port, self.config_path)
        else:
            await self.server.add_sockets(self.sockets)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        self.announce.when_orphaned(self.stopping.set)
        self.announce.ready(f"Serving {self.config_path}")

    def reload(self) -> None:
        """Compile beside the live table; swap only if the whole file compiles."""
        self.announce.reloading()
        ok = False
        try:
            table = compile_file(self.config_path, handlers=self.router.handlers.rules)
        except ConfigError as exc:
            log.error("reload rejected, still serving the previous configuration:\n%s", exc)
        except Exception:  # a compiler bug must not pass for a good reload, nor stop serving
            log.exception("reload failed inside the compiler; still serving the previous configuration")
        else:
            restart_only_changes(self.router.table, table)
            for warning in table.warnings:
                log.warning("%s", warning)
            self.router.swap(table)
            ok = True
            log.info("configuration reloaded from %s", self.config_path)
        finally:
            self.announce.reloaded(ok, f"Serving {self.config_path}")

    async def share_stats(self, instance: InstanceStats) -> None:
        """A worker's counters, where its siblings' /statsz reads them."""
        while True:
            instance.write(self.runtime.stats, self.runtime.in_flight)
            await asyncio.sleep(WRITE_INTERVAL)

    async def watchdog(self, interval: float) -> None:
        """Say the event loop is alive; whoever watches kills the process when it stops saying so."""
        while True:
            self.announce.alive()
            await asyncio.sleep(interval / 2)

    async def drain(self) -> None:
        """Stop accepting, let requests in flight finish until the deadline, then close."""
        self.announce.stopping()
        assert self.server is not None
        self.router.draining = True
        self.server.stop()
        deadline = time.monotonic() + self.router.table.server.drain_timeout
        log.info("draining %d request(s) in flight", self.runtime.in_flight)
        while self.runtime.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.runtime.in_flight:
            log.warning("drain deadline passed with %d request(s) still in flight", self.runtime.in_flight)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.close_all_connections(), timeout=1.0)


def run(serving: Coroutine[Any, Any, int]) -> int:
    """Run `serving` (serve's coroutine) to its end on uvloop's event loop: libuv does the
    loop's own work per request (readiness, callbacks, timers) for less than asyncio's."""
    return uvloop.run(serving)


async def serve(
    config_path: str,
    table: Table,
    announce: Announcer | None = None,
    sockets: list[socket.socket] | None = None,
    instance: InstanceStats | None = None,
) -> int:
    """Serve until SIGTERM; see Gateway for what a pre-fork worker passes."""
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    gateway = Gateway(config_path, table, announce, sockets, instance)
    try:
        await gateway.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    interval = gateway.announce.watchdog_interval()
    tasks = [asyncio.create_task(gateway.watchdog(interval))] if interval else []
    if instance is not None:
        tasks.append(asyncio.create_task(gateway.share_stats(instance)))
    tasks.append(asyncio.create_task(gateway.runtime.share_breakers()))
    await gateway.stopping.wait()
    await gateway.drain()
    for task in tasks:
        task.cancel()
    await gateway.runtime.toolbox.close()
    gateway.runtime.access_log.flush()  # the last requests' lines, before their timer
    metrics.PUBLISHER.publish()  # with workers, the last requests' metrics, before their loop pass
    if instance is not None:
        instance.write(gateway.runtime.stats, 0)
    log.info("stopped")
    return 0
