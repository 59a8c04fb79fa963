"""A client process firing admissions at one limit all at once; prints how many were admitted.

    python -m tests.state.hammer (--redis URL | --socket PATH) --key K --limit N --requests M --go FILE

It connects first, then waits for FILE to exist, so that the processes of a test fire together.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from limits.backend import Backend, Check
from limits.redis_state import RedisBackend
from limits.state_client import StateClient


async def main(args: argparse.Namespace) -> int:
    backend: Backend = RedisBackend(args.redis, 5.0) if args.redis else StateClient(args.socket, 5.0)
    check = [Check(args.kind, args.key, args.limit, 60.0, 1)]
    await backend.spent(["warm-up"])  # connected before the start
    print("ready", flush=True)
    while not os.path.exists(args.go):
        time.sleep(0.001)
    admissions = await asyncio.gather(*(backend.admit(check, f"{os.getpid()}.{i}") for i in range(args.requests)))
    await backend.close()
    return sum(admission.allowed for admission in admissions)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--socket")
    parser.add_argument("--key", required=True)
    parser.add_argument("--kind", default="count")
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--go", required=True)
    print(asyncio.run(main(parser.parse_args())), flush=True)
