"""A delegate that raises, told of a request's head, a piece of its body or its end
(server/http1.py): the exception is logged and the connection aborted, as in Tornado."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from server.http1 import ClientConnection

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}"


class _Transport:
    """What the connection asks of its transport; `aborted` once it was aborted."""

    def __init__(self) -> None:
        self.aborted = False
        self.written: list[bytes] = []

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Delegate:
    """Raises in the step named `failing`; records the steps it was told of."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.steps: list[str] = []

    def _step(self, name: str) -> None:
        self.steps.append(name)
        if name == self.failing:
            raise RuntimeError(f"{name} failed")

    def headers_received(self, start_line: Any, headers: Any) -> None:
        self._step("headers_received")

    def data_received(self, chunk: bytes) -> None:
        self._step("data_received")

    def finish(self) -> None:
        self._step("finish")

    def on_connection_close(self) -> None:
        self._step("on_connection_close")


@pytest.mark.parametrize("failing", ["headers_received", "data_received", "finish"])
def test_a_raising_delegate_is_logged_and_its_connection_aborted(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    delegate = _Delegate(failing)

    async def serve() -> _Transport:
        router = SimpleNamespace(
            table=SimpleNamespace(server=SimpleNamespace(write_buffer=65536)),
            find_handler=lambda request: delegate,
        )
        listener = SimpleNamespace(router=router, loop=asyncio.get_running_loop(), connections=set(),
                                   max_connections=10, refusing=0, idle_timeout=60.0)
        connection = ClientConnection(listener)  # type: ignore[arg-type]
        transport = _Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(REQUEST)
        connection.connection_lost(None)
        return transport

    with caplog.at_level(logging.ERROR, logger="gateway"):
        transport = asyncio.run(serve())
    assert transport.aborted
    assert failing in delegate.steps
    failures = [r for r in caplog.records if r.getMessage().startswith("uncaught exception serving")]
    assert failures and failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == f"{failing} failed"
