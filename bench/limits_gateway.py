"""What rate limits add to a request at concurrency 1, through the whole gateway.

    python -m bench.limits_gateway [--rounds 5] [--requests 300]

Starts the mock provider, a real redis-server and three gateways on the same routes: without
limits, with an API key's rpm and tpm limits counted in memory, and the same limits counted
in Redis (one Lua script per check, plus one to settle the tokens after the answer). Sends
sequential chat requests over one keep-alive connection to each in turn, round after round,
and prints each one's p50 and p99 and the p50 added over the gateway without limits. Not a
test: the numbers are for reading, nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.processes import ROOT, start_gateway, start_mock, stop
from tests.support import RedisServer

TOKEN = "bench-limits-token-0123456789"
SECRETS = f"client_token: {TOKEN}\n"
ROUTES = """version: 1
secrets: secrets.yaml
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  access_log: false
providers:
  mock: {url: %(mock)s/v1}
%(limits)s
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
"""
LIMITS = "limits: {keys: {rpm: 100000000, tpm: 1000000000}}\n"
BODY = json.dumps({"model": "mock/gpt-4o-mini", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()


def latencies(port: int, requests: int) -> list[float]:
    """Milliseconds of `requests` sequential requests over one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    taken = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", BODY, headers)
            answer = connection.getresponse()
            answer.read()
            taken.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"status {answer.status}")
    finally:
        connection.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="per gateway per round")
    args = parser.parse_args()
    mock, mock_url = start_mock()
    redis = RedisServer()
    gateways = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            variants = {
                "no limits": "",
                "limits, state: memory": LIMITS,
                "limits, state: redis": f'state: {{url: "{redis.url}", timeout: 1s}}\n' + LIMITS,
            }
            ports = {}
            for index, (name, limits) in enumerate(variants.items()):
                directory = Path(workdir) / str(index)
                directory.mkdir()
                gateway, port = start_gateway(ROOT, ROUTES % {"mock": mock_url, "limits": limits}, SECRETS,
                                              directory)
                gateways.append(gateway)
                ports[name] = port
                latencies(port, 100)  # warm up
            taken: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, port in ports.items():
                    taken[name] += latencies(port, args.requests)
            base = statistics.median(taken["no limits"])
            print(f"{'gateway':24} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10}")
            for name, values in taken.items():
                p50 = statistics.median(values)
                p99 = statistics.quantiles(values, n=100)[98]
                print(f"{name:24} {p50:8.3f} {p99:8.3f} {p50 - base:+10.3f}")
    finally:
        stop(*gateways, mock)
        redis.stop()


if __name__ == "__main__":
    main()
