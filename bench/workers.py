"""server.workers: 2 against server.workers: 1 on this machine: requests/s and their ratio.

    python -m bench.workers [--duration 10] [--warmup 2] [--rounds 2] [--concurrency 32]

The upstream is nginx answering a fixed chat completion (JSON, or an SSE stream) from
memory, so that the provider's side costs almost nothing and the gateway's processes get
as much of the machine as the load generator (wrk, one thread) leaves them. Each round
measures workers=1 then workers=2 for each scenario, seconds apart; the ratio is
workers=2 / workers=1 per scenario, with each side's CPU use (all of the gateway's
processes, nginx, wrk) in % of one core, to tell what bounds the row. Nothing is pinned:
on a machine of N cores, the N workers share them with wrk and nginx.
Needs nginx and wrk (`apt-get install -y nginx wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.processes import ROOT, free_port
from bench.run import group_cpu_seconds

TOKEN = "bench-workers-token-loopback-only"
ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from nginx!"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
})
STREAM = "".join(
    "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
                           "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta,
                                                                "finish_reason": finish}]}) + "\n\n"
    for delta, finish in ([{"role": "assistant", "content": ""}, None], *[[{"content": w}, None] for w in
                          ("Hello", " from", " nginx", "!")], [{}, "stop"])
) + "data: [DONE]\n\n"
NGINX = """
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(tmp)s/body;
    server {
        listen 127.0.0.1:%(port)d;
        keepalive_requests 1000000;
        location = /json/v1/chat/completions { default_type application/json; return 200 '%(json)s'; }
        location = /sse/v1/chat/completions { default_type text/event-stream; return 200 '%(sse)s'; }
    }
}
"""
ROUTES = """version: 1
server: {listen: "127.0.0.1:%(port)d", workers: %(workers)d, access_log: false}
secrets: secrets.yaml
providers:
  nginx-json: {url: "http://127.0.0.1:%(upstream)d/json/v1", api_key: sk-bench-workers}
  nginx-sse: {url: "http://127.0.0.1:%(upstream)d/sse/v1", api_key: sk-bench-workers}
agents:
  json: {models: [nginx-json/gpt-4o-mini]}
  stream: {models: [nginx-sse/gpt-4o-mini]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
"""
LUA = """
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = '{"model": "' .. os.getenv("BENCH_MODEL") .. '", "messages": [{"role": "user", "content": "hi"}]}'
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=2, help="workers=1 then workers=2, this many times")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections")
    args = parser.parse_args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install -y nginx wrk", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        work = Path(tmp)
        nginx_port = free_port()
        (work / "nginx.conf").write_text(NGINX % {"tmp": tmp, "port": nginx_port, "json": ANSWER,
                                                   "sse": STREAM.replace("\n", "\\n")})
        (work / "chat.lua").write_text(LUA % {"token": TOKEN})
        nginx = subprocess.Popen(
            ["nginx", "-c", str(work / "nginx.conf"), "-p", tmp, "-g",
             f"daemon off; pid {tmp}/nginx.pid; error_log stderr warn;" + (" user root;" if os.geteuid() == 0
                                                                             else "")],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        try:
            _wait_listening(nginx_port)
            for _ in range(args.rounds):
                for workers in (1, 2):
                    gateway, port = _start_gateway(work, workers, nginx_port)
                    try:
                        for scenario in ("json", "stream"):
                            row = _measure(work, port, scenario, args, gateway.pid, nginx.pid)
                            results.setdefault((scenario, workers), []).append(row)
                            print(f"workers={workers} {scenario:6} {row['rps']:8.0f} req/s  gateway cpu "
                                  f"{row['gateway_cpu']:4.0f}%  nginx {row['nginx_cpu']:3.0f}%  "
                                  f"wrk {row['wrk_cpu']:3.0f}%  errors {row['errors']:.0f} "
                                  f"{row['error_kinds']}", flush=True)
                    finally:
                        _stop(gateway)
        finally:
            _stop(nginx)
    print(f"\nnproc {os.cpu_count()}, load average at the end {os.getloadavg()[0]:.2f}, "
          f"c={args.concurrency}, {args.rounds} round(s) of {args.duration}s; "
          "best round per row (cpu in % of one core)")
    print(f"{'scenario':8} {'w=1 req/s':>10} {'w=2 req/s':>10} {'ratio':>6}   w=1 gw/nginx/wrk cpu   "
          "w=2 gw/nginx/wrk cpu")
    for scenario in ("json", "stream"):
        one, two = (max(results[(scenario, w)], key=lambda r: (not r["errors"], r["rps"])) for w in (1, 2))
        flag = "!" if one["errors"] or two["errors"] else " "  # a row with errors is not a result
        print(f"{scenario:8} {one['rps']:10.0f} {two['rps']:10.0f} {two['rps'] / one['rps']:6.2f}{flag}  "
              f"{_cpu(one):>20}   {_cpu(two):>20}")
    return 0


def _cpu(row: dict[str, Any]) -> str:
    return f"{row['gateway_cpu']:.0f}/{row['nginx_cpu']:.0f}/{row['wrk_cpu']:.0f}"


def _start_gateway(work: Path, workers: int, upstream: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (work / "secrets.yaml").write_text(f"client_token: {TOKEN}\n")
    (work / "routes.yaml").write_text(ROUTES % {"port": port, "workers": workers, "upstream": upstream})
    serve = [sys.executable, str(ROOT / "gateway.py"), "serve", "-c", str(work / "routes.yaml")]
    gateway = subprocess.Popen(serve, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=open(work / f"gateway-{workers}.log", "wb"))  # noqa: SIM115
    try:
        _wait_listening(port)
    except RuntimeError:
        print((work / f"gateway-{workers}.log").read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    time.sleep(1)  # every worker up, not only the first
    return gateway, port


def _measure(work: Path, port: int, scenario: str, args: argparse.Namespace, gateway: int,
             nginx: int) -> dict[str, Any]:
    wrk = ["wrk", "-t1", f"-c{args.concurrency}", "-s", str(work / "chat.lua"), f"http://127.0.0.1:{port}"]
    env = {**os.environ, "BENCH_MODEL": scenario}
    if args.warmup:
        subprocess.run([*wrk, f"-d{args.warmup}s"], env=env, capture_output=True, check=True)
    before = (group_cpu_seconds(gateway), group_cpu_seconds(nginx), time.monotonic())
    load = subprocess.Popen([*wrk, f"-d{args.duration}s"], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    wrk_cpu = 0.0
    while load.poll() is None:
        wrk_cpu = max(wrk_cpu, group_cpu_seconds(load.pid))
        time.sleep(0.2)
    output = load.stdout.read() if load.stdout else ""
    elapsed = time.monotonic() - before[2]
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    kinds = {"non-2xx": int(errors.group(1)) if errors else 0}
    if sockets:
        kinds.update(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
    return {
        "rps": requests,
        "errors": float(sum(kinds.values())),
        "error_kinds": {kind: n for kind, n in kinds.items() if n},
        "gateway_cpu": 100 * (group_cpu_seconds(gateway) - before[0]) / elapsed,
        "nginx_cpu": 100 * (group_cpu_seconds(nginx) - before[1]) / elapsed,
        "wrk_cpu": 100 * wrk_cpu / args.duration,
    }


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # something answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
