#!/usr/bin/env python3
"""The gateway's one entry point: serve | check | routes.

python gateway.py serve  -c routes.yaml   # run (SIGHUP reloads, SIGTERM drains and exits)
python gateway.py check  -c routes.yaml   # validate and compile, like `nginx -t`
python gateway.py routes -c routes.yaml   # print the compiled routing table
"""

from __future__ import annotations

import argparse
import logging
import sys

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.table import Table
from handlers.registry import HANDLERS, Handlers
from ops import tornado_logs
from ops.log_lines import OneLineFormatter

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["serve", "check", "routes"])
    parser.add_argument("-c", "--config", default="routes.yaml", help="routes.yaml to use")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    tornado_logs.install()
    try:
        table = compile_file(args.config, handlers=HANDLERS.rules)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{args.config}: {len(exc.problems)} error(s); configuration rejected", file=sys.stderr)
        return 1
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "check":
        print(
            f"{args.config}: configuration OK ({len(table.routes)} routes, "
            f"{len(table.providers)} providers, {len(table.agents)} agents)"
        )
        return 0
    if args.command == "routes":
        print_routes(table, HANDLERS)
        return 0
    if table.server.workers > 1:
        from server.supervisor import supervise  # imported here: check and routes need no server

        return supervise(args.config, table)
    from server.lifecycle import run, serve

    return run(serve(args.config, table))


def print_routes(table: Table, handlers: Handlers) -> None:
    """The compiled table as an operator reads it: one line per route."""
    rows = [("METHOD", "PATH", "HANDLER", "AUTH", "CONVERTERS", "UPSTREAM")]
    for route in table.routes:
        method, _, path = route.match.partition(" ")
        chains = "; ".join(f"{fmt}: {' > '.join(plan.names)}" for fmt, plan in route.chains.items())
        upstream = handlers.classes[route.handler].rules.upstream(route, table)
        auth = "bearer" if route.auth else "none"
        rows.append((method, path, route.handler, auth, chains or "-", upstream))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])


if __name__ == "__main__":
    sys.exit(main())
