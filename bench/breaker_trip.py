"""Added latency per request before and after a failing first target's breaker opens.

    python -m bench.breaker_trip [--requests 20] [--fault slow|refuse] [--timeout 1s]
                                 [--delay-ms 5000] [--failures 3] [--root DIR]

Starts the mock provider and a gateway (from this checkout, or the one at --root) with an
agent of three targets on the mock, the first on a provider with a --timeout, and sends
sequential chat requests to the agent:

1. baseline: every target healthy (the first answers);
2. the first target fails (the mock's /_mock/faults): `slow` delays its first byte by
   --delay-ms, past the provider's timeout, so each request pays that timeout before the
   second target answers; `refuse` closes its connections, which fails fast;
   after --failures of them its breaker opens (cooldown 10 minutes);
3. after the trip: the open target is skipped without a network call.

Prints each request's latency and which target answered, the medians, the breaker's
state from /statsz, and the ratio of the after-trip median to the baseline median (the
issue's "added latency per request returns to normal after the trip"). Not a test: the
numbers are for reading, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.processes import ROOT, start_gateway, start_mock, stop

TOKEN = "bench-breaker-trip-token"
SECRETS = f"client_token: {TOKEN}\n"
FAILING = "gpt-down"  # the first target's model: the one the mock is told to fail

ROUTES = """version: 1
secrets: secrets.yaml
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  access_log: false
breakers: {failures: %(failures)d, window: 60s, cooldown: 10m}
providers:
  first: {url: %(mock)s/v1, timeout: %(timeout)s}
  mock: {url: %(mock)s/v1}
agents:
  trio: {models: [first/%(failing)s, mock/gpt-second, mock/gpt-third]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /statsz, handler: statsz}
  - {match: GET /healthz, handler: health}
"""

_ANSWERED_BY = re.compile(r"Hello from mock (\S+)!")


def _call(
    url: str, method: str = "GET", document: object = None, token: str | None = None
) -> tuple[int, bytes]:
    data = None if document is None else json.dumps(document).encode()
    request = urllib.request.Request(url, data, method=method, headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _chat(port: int) -> tuple[float, str]:
    """One request to the agent: seconds it took, and which model answered (or the status)."""
    document = {"model": "trio", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    started = time.perf_counter()
    status, body = _call(f"http://127.0.0.1:{port}/v1/chat/completions", "POST", document, TOKEN)
    seconds = time.perf_counter() - started
    if status != 200:
        return seconds, f"status {status}"
    found = _ANSWERED_BY.match(json.loads(body)["choices"][0]["message"]["content"] or "")
    return seconds, found.group(1) if found else "?"


def _phase(name: str, port: int, requests: int) -> list[float]:
    """`requests` sequential requests, each printed; their latencies in milliseconds."""
    print(f"\n{name}:")
    latencies = []
    for index in range(requests):
        seconds, answered_by = _chat(port)
        latencies.append(seconds * 1000)
        print(f"  {index + 1:3d}  {seconds * 1000:8.1f} ms  answered by {answered_by}")
    print(f"  median {statistics.median(latencies):.1f} ms")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20, help="requests before and after the trip")
    parser.add_argument("--fault", choices=("slow", "refuse"), default="slow")
    parser.add_argument("--timeout", default="1s", help="the first provider's timeout")
    parser.add_argument("--delay-ms", type=float, default=5000, help="slow: its first byte delay")
    parser.add_argument("--failures", type=int, default=3, help="breakers.failures: failures that open it")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose gateway.py to run")
    args = parser.parse_args()
    mock, mock_url = start_mock()
    gateway = None
    with tempfile.TemporaryDirectory() as workdir:
        try:
            routes = ROUTES % {"mock": mock_url, "timeout": args.timeout, "failures": args.failures,
                               "failing": FAILING}
            gateway, port = start_gateway(args.root, routes, SECRETS, Path(workdir))
            for _ in range(5):  # warm up: connections, first-request costs
                _chat(port)
            baseline = _phase("baseline (every target healthy)", port, args.requests)
            script = {"first_byte_delay_ms": args.delay_ms} if args.fault == "slow" else {"refuse": True}
            _call(f"{mock_url}/_mock/faults", "POST", {"model": FAILING, **script})
            failing = f"first target failing ({args.fault}), until its breaker opens"
            before = _phase(failing, port, args.failures)
            after = _phase("after the trip", port, args.requests)
            statsz = json.loads(_call(f"http://127.0.0.1:{port}/statsz", token=TOKEN)[1])
            breaker = statsz["breakers"].get(f"first/{FAILING}", {})
        finally:
            stop(gateway, mock)
    medians = [statistics.median(latencies) for latencies in (baseline, before, after)]
    slow = f" (first byte after {args.delay_ms:g} ms, provider timeout {args.timeout})"
    print(f"\ngateway {args.root}; fault {args.fault}{slow if args.fault == 'slow' else ''}")
    print(f"breaker of first/{FAILING}: state {breaker.get('state')}, trips {breaker.get('trips')}")
    print("median: baseline {:.1f} ms, while failing {:.1f} ms, after the trip {:.1f} ms".format(*medians)
          + f"; after / baseline = {medians[2] / medians[0]:.2f}")


if __name__ == "__main__":
    main()
