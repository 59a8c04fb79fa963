"""The state process one machine's workers share when `state: memory` and server.workers > 1.

    python -m limits.state_server --socket PATH

It holds limits/memory.py's backend and answers the workers (limits/state_client.py) over a
unix socket, one request at a time, so every admission is atomic across the workers and the
limits are exact on the machine as they are in one process; the breakers one worker opened
are read there by the others (limits/shared_breakers.py). The supervisor starts it before
the workers and hands them the socket path in $GATEWAY_STATE_SOCKET (limits/state.py):
`start_process` below. It holds the counts of the machine: when it is restarted they start
afresh; a worker that cannot reach it follows on_state_error meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
from typing import Any

from limits import state_protocol as wire
from limits.memory import MemoryBackend

log = logging.getLogger("gateway.state")


class StateServer:
    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def answer(self, request: list[Any]) -> Any:
        op, *args = request
        if op == "admit":
            checks, entry = args
            return wire.admission_out(await self.backend.admit(wire.checks_in(checks), str(entry)))
        if op == "settle":
            corrections, leases, charges, entry = args
            await self.backend.settle(wire.corrections_in(corrections),
                                      [(str(key), str(lease)) for key, lease in leases],
                                      wire.charges_in(charges), str(entry))
            return None
        if op == "spent":
            return await self.backend.spent([str(key) for key in args[0]])
        if op == "open_breaker":
            target, until, reason = args
            return await self.backend.open_breaker(str(target), float(until), str(reason))
        if op == "open_breakers":
            return [list(opened) for opened in await self.backend.open_breakers()]
        raise ValueError(f"unknown state operation {op!r}")

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one worker's requests in order until it disconnects (or sends garbage)."""
        task = asyncio.current_task()
        assert task is not None
        self.clients[task] = writer
        try:
            while True:
                request = await wire.read_message(reader)
                writer.write(wire.frame(await self.answer(request)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (ValueError, TypeError) as exc:
            log.error("state client sent a bad request (%s); closing its connection", exc)
        finally:
            del self.clients[task]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def disconnect(self) -> None:
        """End every client's connection; their handlers end as at a disconnection."""
        tasks = list(self.clients)
        for writer in self.clients.values():
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(path: str) -> None:
    """Serve on the unix socket `path` (replacing a stale one) until SIGTERM or SIGINT."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    state = StateServer(MemoryBackend())
    server = await asyncio.start_unix_server(state.serve_client, path)
    os.chmod(path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{READY}{path}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        await state.disconnect()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


READY = "state server listening on "


def start_process(path: str, timeout: float = 15.0, stderr: int | None = None) -> subprocess.Popen[str]:
    """Start `python -m limits.state_server --socket path` and return once it listens.

    Its stderr is the caller's unless `stderr` says otherwise (its log lines join the
    supervisor's); stop it with SIGTERM."""
    process = subprocess.Popen([sys.executable, "-m", "limits.state_server", "--socket", path],
                               stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith(READY):
        process.kill()
        process.wait()
        raise RuntimeError(f"the state process did not start (exit status {process.returncode})")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parser.parse_args().socket))


if __name__ == "__main__":
    main()
