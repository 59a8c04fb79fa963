"""The whole suite's hooks: the gateways' log folder for the run, and in-process tests' HTTP server
(fixtures of the end-to-end tests are in e2e/)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from server.app import TableRouter
from server.http1 import Listener
from tests.support import log_dir


def pytest_configure(config: pytest.Config) -> None:
    """One log folder for the run, named before xdist starts its workers so they share it."""
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("GATEWAY_TEST_LOGS", tempfile.mkdtemp(prefix="gateway-test-logs-"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A green run leaves no logs behind (each gateway checked its own for secrets as it stopped)."""
    if not hasattr(session.config, "workerinput") and exitstatus == 0:
        shutil.rmtree(log_dir(), ignore_errors=True)


@pytest.fixture
def http_server(io_loop: IOLoop, _unused_port: tuple[Any, int], app: TableRouter) -> Iterator[Listener]:
    """pytest-tornado's `http_server`, served by the gateway's own HTTP/1.1 server: a test's `app`
    fixture is the gateway's router, on the test's IOLoop."""

    async def start() -> Listener:
        listener = Listener(app, max_connections=100, idle_timeout=60.0)
        await listener.add_sockets([_unused_port[0]])
        return listener

    listener = io_loop.run_sync(start)
    yield listener
    listener.stop()
    io_loop.run_sync(listener.close_all_connections)
