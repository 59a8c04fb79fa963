"""What forty requests with 1 MiB model names leave behind: gateway RSS, /metrics and /statsz size.

    python -m bench.label_memory [--root DIR] [--requests 40] [--name-mib 1]

Starts the mock provider and `DIR/gateway.py serve` (DIR: this checkout by default; point it at
another checkout to measure that one) on free loopback ports, measures, sends the requests
(chat, /v1/messages and a forward route in turn), measures again, and stops both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.processes import ROOT, rss_mib, start_gateway, start_mock, stop

TOKEN = "bench-label-memory-token-0001"
SECRETS = f"client_token: {TOKEN}\n"
ROUTES = """version: 1
server: {listen: "127.0.0.1:${GATEWAY_PORT}"}
secrets: secrets.yaml
providers:
  mock: {url: "%(mock)s/v1", format: openai, api_key: sk-bench-label-memory}
agents:
  fast: {models: [mock/gpt-4o-mini]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: POST /v1/embeddings, handler: forward}
  - {match: GET /healthz, handler: health}
  - {match: GET /metrics, handler: metrics}
  - {match: GET /statsz, handler: statsz}
"""
REQUESTS = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "mock/"),
    ("/v1/messages", {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "mock/"),
    ("/v1/embeddings", {"input": "x"}, ""),
]


def call(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def measure(gateway: subprocess.Popen, base: str) -> dict[str, float]:
    metrics = len(call(f"{base}/metrics")[1])
    statsz = len(call(f"{base}/statsz")[1])
    return {"rss_mib": round(rss_mib(gateway.pid), 1), "metrics_bytes": metrics, "statsz_bytes": statsz}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose gateway.py to run")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--name-mib", type=float, default=1.0)
    args = parser.parse_args()
    mock, mock_url = start_mock()
    gateway = None
    try:
        work = Path(tempfile.mkdtemp(prefix="label-memory-"))
        gateway, port = start_gateway(args.root, ROUTES % {"mock": mock_url}, SECRETS, work)
        base = f"http://127.0.0.1:{port}"
        before = measure(gateway, base)
        name = "x" * int(args.name_mib * 1024 * 1024)
        statuses: dict[int, int] = {}
        for i in range(args.requests):
            path, document, prefix = REQUESTS[i % len(REQUESTS)]
            body = json.dumps({**document, "model": f"{prefix}{i}{name}"}).encode()
            status = call(f"{base}{path}", body)[0]
            statuses[status] = statuses.get(status, 0) + 1
        after = measure(gateway, base)
        print(json.dumps({"root": str(args.root), "requests": args.requests, "name_mib": args.name_mib,
                          "statuses": statuses, "before": before, "after": after}, indent=2))
        return 0
    finally:
        stop(gateway, mock)


if __name__ == "__main__":
    sys.exit(main())
