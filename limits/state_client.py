"""limits/backend.py's Backend answered by the machine's state process (limits/state_server.py).

One unix-socket connection per worker carries every request; answers come back in order,
so each waiting call takes the next answer. A lost connection fails the calls waiting on it
(limits/limiter.py then follows on_state_error) and the next call connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from limits import state_protocol as wire
from limits.backend import Admission, Charge, Check, Correction, StateError


class StateClient:
    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.writer: asyncio.StreamWriter | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.connecting: asyncio.Lock | None = None
        self.reading: asyncio.Task[None] | None = None

    async def admit(self, checks: Sequence[Check], entry: str) -> Admission:
        return wire.admission_in(await self._ask(["admit", wire.checks_out(list(checks)), entry]))

    async def settle(
        self, corrections: Sequence[Correction], leases: Sequence[tuple[str, str]], charges: Sequence[Charge],
        entry: str,
    ) -> None:
        await self._ask(["settle", wire.corrections_out(list(corrections)), [list(lease) for lease in leases],
                         wire.charges_out(list(charges)), entry])

    async def spent(self, keys: Sequence[str]) -> list[int]:
        return [int(amount) for amount in await self._ask(["spent", list(keys)])]

    async def open_breaker(self, target: str, until: float, reason: str) -> None:
        await self._ask(["open_breaker", target, until, reason])

    async def open_breakers(self) -> list[tuple[str, float, str]]:
        opened = await self._ask(["open_breakers"])
        return [(str(target), float(until), str(reason)) for target, until, reason in opened]

    async def _ask(self, request: list[Any]) -> Any:
        writer = await self._connected()
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        writer.write(wire.frame(request))
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self.timeout)
        except TimeoutError as exc:
            answer.cancel()  # its answer, when it comes, is dropped
            raise StateError("state process: no answer in time") from exc

    async def _connected(self) -> asyncio.StreamWriter:
        if self.writer is not None and not self.writer.is_closing():
            return self.writer
        self.connecting = self.connecting or asyncio.Lock()
        async with self.connecting:
            if self.writer is None or self.writer.is_closing():
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_unix_connection(self.path), self.timeout)
                except (OSError, TimeoutError) as exc:
                    raise StateError(f"state process at {self.path}: {exc}") from exc
                self.writer = writer
                self.reading = asyncio.get_running_loop().create_task(self._read_answers(reader, writer))
            return self.writer

    async def _read_answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hand each answer to the oldest waiting call; on a lost connection, fail them all."""
        try:
            while True:
                message = await wire.read_message(reader)
                answer = self.waiting.popleft()
                if not answer.done():
                    answer.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError) as exc:
            writer.close()
            if self.writer is writer:
                self.writer = None
            while self.waiting:
                answer = self.waiting.popleft()
                if not answer.done():
                    answer.set_exception(StateError(f"state process connection lost: {exc!r}"))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
