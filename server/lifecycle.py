"""The serving process: listen, reload on SIGHUP, drain on SIGTERM, tell systemd each step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from tornado.httpserver import HTTPServer

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.table import Table
from ops import metrics, sdnotify
from runtime.process import Runtime
from server.app import GatewayServer, TableRouter
from server.limits import HARD_MAX_BODY_SIZE, HARD_MAX_HEADER_SIZE

log = logging.getLogger("gateway")
# Settings bound when the listener starts; a reload keeps the running values.
RESTART_ONLY = ("listen_host", "listen_port", "upstream_connections", "idle_timeout", "max_connections")


class Gateway:
    """One serving process: its runtime and its live table."""

    def __init__(self, config_path: str, table: Table) -> None:
        """Called on the running event loop, which the runtime's upstream client binds to."""
        self.config_path = config_path
        self.runtime = Runtime.start(table.server)
        self.router = TableRouter(table, self.runtime)
        self.stopping = asyncio.Event()
        self.server: HTTPServer | None = None

    async def start(self) -> None:
        settings = self.router.table.server
        self.server = GatewayServer(
            self.router,
            max_connections=settings.max_connections,
            max_body_size=HARD_MAX_BODY_SIZE,
            max_header_size=HARD_MAX_HEADER_SIZE,
            idle_connection_timeout=settings.idle_timeout,
            body_timeout=settings.body_timeout + 5,  # ours answers 408 first; Tornado's is the backstop
        )
        self.server.listen(settings.listen_port, settings.listen_host)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        log.info("listening on %s:%d (%s)", settings.listen_host, settings.listen_port, self.config_path)
        sdnotify.ready(f"Serving {self.config_path}")

    def reload(self) -> None:
        """Compile beside the live table; swap only if the whole file compiles."""
        sdnotify.reloading()
        try:
            table = compile_file(self.config_path, handlers=self.router.handlers.rules)
        except ConfigError as exc:
            metrics.RELOADS.labels(result="failure").inc()
            log.error("reload rejected, still serving the previous configuration:\n%s", exc)
        except Exception:  # a compiler bug must not pass for a good reload, nor stop serving
            metrics.RELOADS.labels(result="failure").inc()
            log.exception("reload failed inside the compiler; still serving the previous configuration")
        else:
            old, new = self.router.table.server, table.server
            if any(getattr(old, name) != getattr(new, name) for name in RESTART_ONLY):
                log.warning("%s change only on restart", ", ".join(f"server.{name}" for name in RESTART_ONLY))
            for warning in table.warnings:
                log.warning("%s", warning)
            self.router.swap(table)
            metrics.RELOADS.labels(result="success").inc()
            log.info("configuration reloaded from %s", self.config_path)
        finally:
            sdnotify.ready(f"Serving {self.config_path}")

    async def watchdog(self, interval: float) -> None:
        while True:
            sdnotify.watchdog_ping()
            await asyncio.sleep(interval / 2)

    async def drain(self) -> None:
        """Stop accepting, let requests in flight finish until the deadline, then close."""
        sdnotify.stopping()
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


async def serve(config_path: str, table: Table) -> int:
    gateway = Gateway(config_path, table)
    try:
        await gateway.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    interval = sdnotify.watchdog_interval()
    pinger = asyncio.create_task(gateway.watchdog(interval)) if interval else None
    await gateway.stopping.wait()
    await gateway.drain()
    if pinger is not None:
        pinger.cancel()
    log.info("stopped")
    return 0
