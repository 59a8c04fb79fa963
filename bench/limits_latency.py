"""What a rate-limit check costs at concurrency 1: p50/p99 of Limiter.admit_request (an API key's
rpm and tpm limits, one atomic step) against a local redis-server,
next to a bare Redis PING (the round trip alone) and the in-process memory backend.

    .venv/bin/python bench/limits_latency.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsl.compiler import compile_file  # noqa: E402
from handlers.registry import HANDLERS  # noqa: E402
from limits.limiter import Limiter  # noqa: E402
from tests.support import RedisServer  # noqa: E402

ROUTES = """\
version: 1
providers: {{mock: {{url: "http://127.0.0.1:1/v1"}}}}
agents: {{a: {{models: [mock/m]}}}}
state: {{url: "{url}", timeout: 1s}}
limits:
  keys: {{rpm: 100000000, tpm: 1000000000}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
"""


async def percentiles(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    for _ in range(200):
        await call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, times[int(n * 0.99)] * 1000


def limiter(url: str, directory: Path) -> Limiter:
    path = directory / f"routes-{url.partition(':')[0]}.yaml"
    path.write_text(ROUTES.format(url=url))
    limits = Limiter()
    limits.configure(compile_file(str(path), {}, handlers=HANDLERS.rules))
    return limits


async def measure(n: int, url: str, directory: Path) -> None:
    redis_limits = limiter(url, directory)
    memory_limits = limiter("memory", directory)
    backend = redis_limits.backend

    async def admit_and_finish(limits: Limiter) -> None:
        decision = await limits.admit_request("k", "a", 100)
        await limits.finish(decision.ticket, None)

    rows = [
        ("redis PING (round trip alone)", lambda: backend.client.ping()),
        ("redis admit_request", lambda: redis_limits.admit_request("k", "a", 100)),
        ("redis admit_request + finish", lambda: admit_and_finish(redis_limits)),
        ("memory admit_request", lambda: memory_limits.admit_request("k", "a", 100)),
    ]
    for name, call in rows:
        p50, p99 = await percentiles(call, n)
        print(f"{name:32s} p50 {p50:.3f} ms   p99 {p99:.3f} ms")
    await redis_limits.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    server = RedisServer()
    try:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(measure(n, server.url, Path(directory)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
