"""``python -m mock_provider``: serve the mock on a port and say where, on stdout's first line
(``mock provider listening on HOST:PORT``), which is what the tests and ``make run`` wait for."""

from __future__ import annotations

import argparse
import asyncio
import signal

import tornado.netutil

import mock_provider
from mock_provider.app import make_app, make_server
from mock_provider.request_log import DEFAULT_LOG_LIMIT


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mock_provider", description=mock_provider.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="default delay between stream events")
    p.add_argument("--no-log", action="store_true",
                   help="do not record requests (for benchmarks)")
    p.add_argument("--log-limit", type=int, default=DEFAULT_LOG_LIMIT,
                   help="how many recent requests /_mock/requests keeps")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    app = make_app(args.delay_ms, record_requests=not args.no_log, log_limit=args.log_limit)
    sockets = tornado.netutil.bind_sockets(args.port, args.host)
    server = make_server(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"mock provider listening on {args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m mock_provider``."""
    asyncio.run(_serve(_parse_args(argv)))
