"""Which backend a `state:` setting means, and how a worker finds its machine's state process."""

from __future__ import annotations

from urllib.parse import urlsplit

from dsl.table import StateSettings
from limits.backend import Backend
from limits.memory import MemoryBackend
from limits.state_client import StateClient

# Set by the supervisor of pre-fork workers (server.workers > 1) to the state process's socket
# (python -m limits.state_server --socket PATH): with `state: memory`, workers count there.
STATE_SOCKET_ENV = "GATEWAY_STATE_SOCKET"


def open_backend(state: StateSettings, socket: str | None) -> Backend:
    """The backend of `state`: Redis for a redis url; for memory, the machine's state process
    when `socket` names one, else this process's memory."""
    if state.url != "memory":
        # Imported here: a gateway that counts in memory runs without the redis package.
        from limits.redis_state import RedisBackend

        return RedisBackend(state.url, state.timeout)
    return StateClient(socket, state.timeout) if socket else MemoryBackend()


def shared(state: StateSettings, socket: str | None) -> bool:
    """Whether the state is shared with other processes: Redis, or the machine's state process."""
    return state.url != "memory" or socket is not None


def shown(state: StateSettings, socket: str | None) -> str:
    """The state's url fit for a log line: no password."""
    if state.url == "memory":
        return f"memory (state process {socket})" if socket else "memory"
    parts = urlsplit(state.url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
