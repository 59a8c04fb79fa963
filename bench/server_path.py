"""The gateway's own request path, A/B: two checkouts against one canned nginx upstream.

    python -m bench.server_path [--other DIR] [--rounds 3] [--seconds 5]
    python -m bench.server_path --rss 100000 [--root DIR]   # RSS after 10k requests, then on to N

nginx answers POST /v1/chat/completions with a static chat completion (`return 200`),
so that neither the upstream nor the load generator is the bottleneck: whatever the
gateway costs shows. Both gateways run pinned to core 0 (one loaded at a time, in
interleaved rounds), nginx and wrk to core 1. Printed per round: rps at concurrency 32,
the gateway's CPU time per request (user + system, from /proc: less noisy than rps on a
shared machine) and p50 at concurrency 1, for this checkout and the other, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.processes import ROOT, free_port, rss_mib, start_gateway, stop

WRK_SCRIPT = ROOT / "bench" / "wrk" / "chat.lua"
ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
})
NGINX_CONF = """
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location /v1/chat/completions {{
            default_type application/json;
            return 200 '{answer}';
        }}
    }}
}}
"""
ROUTES = """version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
secrets: secrets.yaml
providers:
  canned:
    url: http://127.0.0.1:{upstream}/v1
    format: openai
    api_key: sk-bench-provider-key
agents:
  bench:
    models: [canned/gpt-4o-mini]
routes:
  - match: POST /v1/chat/completions
    handler: chat
  - match: GET /healthz
    handler: health
    auth: none
"""
SECRETS = "client_token: bench-token-loopback-only\n"


def start_nginx(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(user + NGINX_CONF.format(tmp=tmp, port=port, answer=ANSWER))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(["taskset", "-c", "1", nginx, "-e", "stderr", "-c", str(conf), "-p", str(tmp),
                             "-g", f"daemon off; pid {tmp}/nginx.pid; error_log stderr warn;"])
    time.sleep(0.5)
    return proc, port


def start_own_gateway(root: Path, tmp: Path, upstream: int) -> tuple[subprocess.Popen, int]:
    """The gateway of checkout `root`, pinned to core 0, in front of nginx on port `upstream`."""
    work = Path(tempfile.mkdtemp(prefix="gw-", dir=tmp))
    return start_gateway(root, ROUTES.format(upstream=upstream), SECRETS, work, core=0)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, connections: int, seconds: float, pid: int | None = None) -> dict:
    """One wrk run; with `pid`, also that process's CPU microseconds per request."""
    before = cpu_seconds(pid) if pid else 0.0
    env = {**os.environ, "BENCH_MODEL": "bench"}
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
                          "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    found = re.search(r"BENCH_RESULT (\{.*\})", out)
    assert found, out
    result = json.loads(found.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if pid:
        result["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(result["requests"], 1)
    errors = sum(v for k, v in result.items() if k.startswith("err_"))
    if errors:
        print(f"  ({errors} errors on :{port})", file=sys.stderr)
    return result


def ab(roots: dict[str, Path], rounds: int, seconds: float, tmp: Path, upstream: int) -> None:
    gateways = {name: start_own_gateway(root, tmp, upstream) for name, root in roots.items()}
    try:
        for _, port in gateways.values():
            wrk(port, 32, 2)  # warm-up
        names = list(roots)
        rps: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        p50: dict[str, list[float]] = {n: [] for n in names}
        for round_ in range(rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                proc, port = gateways[name]
                result = wrk(port, 32, seconds, proc.pid)
                rps[name].append(result["rps"])
                cpu[name].append(result["cpu_us"])
            for name in order:
                p50[name].append(wrk(gateways[name][1], 1, seconds)["p50_us"] / 1000)
            print(f"round {round_ + 1}: " + _line(names, rps, cpu, p50, lambda xs: xs[-1]), flush=True)
        print("median:  " + _line(names, rps, cpu, p50, lambda xs: sorted(xs)[len(xs) // 2]))
        direct = wrk(upstream, 1, 3)["p50_us"] / 1000
        print(f"nginx direct c=1 p50 ms {direct:.3f}")
    finally:
        stop(*(proc for proc, _ in gateways.values()))


def _line(names: list[str], rps: dict, cpu: dict, p50: dict, pick: Callable[[list[float]], float]) -> str:
    """c=32 rps, CPU per request and c=1 p50 of both checkouts, and this one's over the other's."""
    a, b = names
    parts = []
    measures = (("c=32 rps", rps, ".0f"), ("CPU us/req", cpu, ".0f"), ("c=1 p50 ms", p50, ".3f"))
    for what, values, form in measures:
        x, y = pick(values[a]), pick(values[b])
        parts.append(f"{what} {a} {x:{form}} {b} {y:{form}} ratio {x / y:.3f}")
    return " | ".join(parts)


def rss_run(root: Path, total: int, tmp: Path, upstream: int) -> None:
    """RSS after the first 10,000 requests, then every further checkpoint up to `total`."""
    proc, port = start_own_gateway(root, tmp, upstream)
    try:
        done, checkpoint = 0, 10_000
        while done < total:
            result = wrk(port, 32, 2)
            done += result["requests"]
            if done >= checkpoint:
                print(f"{done} requests: RSS {rss_mib(proc.pid):.2f} MiB", flush=True)
                checkpoint = done + max(total // 10, 10_000)
        print(f"{done} requests: RSS {rss_mib(proc.pid):.2f} MiB (end)")
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", default="/work/main", help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rss", type=int, default=0, help="instead: RSS over this many requests")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose RSS --rss measures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        nginx, upstream = start_nginx(tmp)
        try:
            if args.rss:
                rss_run(Path(args.root), args.rss, tmp, upstream)
            else:
                ab({"this": ROOT, "other": Path(args.other)}, args.rounds, args.seconds, tmp, upstream)
        finally:
            stop(nginx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
