"""The gateway's own request path, A/B: two checkouts' gateways, case by case, in interleaved rounds.

    python -m bench.server_path --other DIR [--cases json] [--rounds 3] [--seconds 5]
    python -m bench.server_path --cases stream,conv-stream   # streamed, native and converted
    python -m bench.server_path --rss 100000 [--root DIR]    # RSS after 10k requests, then on to N

Each gateway runs from its own checkout (its gateway.py, on its .venv's Python) with this
checkout's routes.bench.yaml (auth, metrics and access log on, as bench/run.py measures it),
in front of the canned provider (nginx serving bench/fixtures/), which is far faster than the
gateway, so that neither the upstream nor the load generator is the bottleneck: whatever the
gateway costs shows. A case is a model of routes.bench.yaml, its answer streamed or not
(CASES). Both gateways run pinned to core 0 (one loaded at a time), nginx and wrk on core 1.
Each round runs every case on both checkouts back to back, in an order that alternates from
round to round. Printed per round and case, then as medians over the rounds: rps at concurrency
32, the gateway's CPU time per request (user + system, from /proc: less noisy than rps on a
shared machine) and p50 at concurrency 1 (until the last byte, for a stream), for this checkout
and the other, and their ratios.

(Until the stream cases came, the upstream was nginx returning a static chat completion and the
gateway ran a minimal routes.yaml without /metrics: `json` numbers from before do not compare.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.processes import ROOT, free_port, rss_mib, start_gateway, stop
from bench.run import (
    CONV_MODEL,
    GATEWAY_MODEL,
    REDACT_MODEL,
    SECRETS_FILE,
    UPSTREAM_MODEL,
    Processes,
    Scenario,
    bench_routes,
    check_answers,
    check_conversion,
    guarded,
    parse_seconds,
    preflight,
    run_wrk,
    start_canned,
    wait_ready,
)

CASES = {  # name: (the model of routes.bench.yaml asked for, streamed)
    "json": (GATEWAY_MODEL, False),
    "stream": (GATEWAY_MODEL, True),
    "conv-json": (CONV_MODEL, False),
    "conv-stream": (CONV_MODEL, True),
    "redact-json": (REDACT_MODEL, False),
    "redact-stream": (REDACT_MODEL, True),
}
WARMUP_SECONDS = 2  # per case and gateway, before the first round
Cores = tuple[int | None, int | None]  # the gateways' core, the load's (wrk, nginx)


def parse_cases(text: str) -> list[str]:
    """'json,conv-stream' into ['json', 'conv-stream']: each case once, in the order given."""
    cases = list(dict.fromkeys(case.strip() for case in text.split(",") if case.strip()))
    unknown = [case for case in cases if case not in CASES]
    if unknown or not cases:
        raise argparse.ArgumentTypeError(f"unknown cases {unknown or text!r}; choose from {','.join(CASES)}")
    return cases


def start_bench_gateway(root: Path, tmp: Path, upstream: int,
                        core: int | None) -> tuple[subprocess.Popen, int]:
    """The gateway of checkout `root` with routes.bench.yaml, in front of the canned provider
    on port `upstream`; the process and its port."""
    work = Path(tempfile.mkdtemp(prefix="gw-", dir=tmp))
    port = free_port()
    routes, _ = bench_routes(port, work / "secrets.yaml", upstream)
    return start_gateway(root, routes, SECRETS_FILE.read_text(), work, core=core, port=port)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(procs: Processes, port: int, model: str, stream: bool, connections: int, seconds: int,
         core: int | None, pid: int | None = None) -> dict:
    """One wrk run at the server on `port`; with `pid`, also that process's CPU microseconds
    per request."""
    before = cpu_seconds(pid) if pid else 0.0
    result = run_wrk(procs, f"http://127.0.0.1:{port}", model, Scenario(stream, connections), seconds,
                     core, f"wrk-{port}")
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if pid:
        result["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(result["requests"], 1)
    errors = sum(v for k, v in result.items() if k.startswith("err_"))
    if errors:
        print(f"  ({errors} errors on :{port}, {model}{' stream' if stream else ''})", file=sys.stderr)
    return result


def ab(procs: Processes, roots: dict[str, Path], cases: list[str], rounds: int, seconds: int,
       upstream: int, cores: Cores) -> None:
    """Both checkouts' gateways, every case per round; per round and at the end, their numbers."""
    server_core, load_core = cores
    gateways: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for name, root in roots.items():
            gateways[name] = start_bench_gateway(root, procs.logdir, upstream, server_core)
        for _, port in gateways.values():
            for model in dict.fromkeys(CASES[case][0] for case in cases):
                ids = check_answers(f"http://127.0.0.1:{port}", model)
                if model == CONV_MODEL:
                    check_conversion(ids)
            for case in cases:
                load(procs, port, *CASES[case], 32, WARMUP_SECONDS, load_core)
        names = list(roots)
        samples = {(case, measure, name): [] for case in cases for measure in ("rps", "cpu", "p50")
                   for name in names}
        for round_ in range(rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for case in cases:
                for name in order:
                    proc, port = gateways[name]
                    result = load(procs, port, *CASES[case], 32, seconds, load_core, proc.pid)
                    samples[case, "rps", name].append(result["rps"])
                    samples[case, "cpu", name].append(result["cpu_us"])
                for name in order:
                    result = load(procs, gateways[name][1], *CASES[case], 1, seconds, load_core)
                    samples[case, "p50", name].append(result["p50_us"] / 1000)
                print(f"round {round_ + 1} {case:13} " + _line(names, case, samples, lambda xs: xs[-1]),
                      flush=True)
        for case in cases:
            print(f"median  {case:13} " + _line(names, case, samples, statistics.median))
        for stream in dict.fromkeys(CASES[case][1] for case in cases):
            direct = load(procs, upstream, UPSTREAM_MODEL, stream, 1, 3, load_core)["p50_us"] / 1000
            print(f"canned provider direct, {'stream' if stream else 'json'}: c=1 p50 ms {direct:.3f}")
    finally:
        stop(*(proc for proc, _ in gateways.values()))


def _line(names: list[str], case: str, samples: dict, pick: Callable[[list[float]], float]) -> str:
    """c=32 rps, CPU per request and c=1 p50 of both checkouts in one case, and this one's over
    the other's."""
    a, b = names
    parts = []
    for what, measure, form in (("c=32 rps", "rps", ".0f"), ("CPU us/req", "cpu", ".0f"),
                                ("c=1 p50 ms", "p50", ".3f")):
        x, y = pick(samples[case, measure, a]), pick(samples[case, measure, b])
        parts.append(f"{what} {a} {x:{form}} {b} {y:{form}} ratio {x / y:.3f}")
    return " | ".join(parts)


def rss_run(procs: Processes, root: Path, total: int, upstream: int, cores: Cores) -> None:
    """RSS after the first 10,000 requests, then every further checkpoint up to `total`."""
    server_core, load_core = cores
    proc, port = start_bench_gateway(root, procs.logdir, upstream, server_core)
    try:
        done, checkpoint = 0, 10_000
        while done < total:
            result = load(procs, port, *CASES["json"], 32, 2, load_core)
            done += result["requests"]
            if done >= checkpoint:
                print(f"{done} requests: RSS {rss_mib(proc.pid):.2f} MiB", flush=True)
                checkpoint = done + max(total // 10, 10_000)
        print(f"{done} requests: RSS {rss_mib(proc.pid):.2f} MiB (end)")
    finally:
        stop(proc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", help="the checkout to compare with (an A/B needs one)")
    parser.add_argument("--cases", type=parse_cases, default=["json"],
                        help=f"comma-separated, of {','.join(CASES)} (default json)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=parse_seconds, default=5, help="per wrk run, whole seconds")
    parser.add_argument("--rss", type=int, default=0, help="instead: RSS over this many requests")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose RSS --rss measures")
    args = parser.parse_args(argv)
    if not args.rss and not args.other:
        parser.error("--other DIR: the checkout to compare this one with")
    checkout = Path(args.root if args.rss else args.other)
    if not (checkout / "gateway.py").exists():
        parser.error(f"{checkout} is not a checkout of the gateway (no gateway.py)")
    return args


def run(args: argparse.Namespace) -> int:
    nginx, cores = preflight(args)
    with tempfile.TemporaryDirectory() as name:
        procs = Processes(Path(name))
        try:
            upstream = free_port()
            start_canned(procs, procs.logdir, nginx, upstream, cores[1])
            wait_ready(procs, "canned", f"http://127.0.0.1:{upstream}/_canned/health", b"OK", timeout=10)
            if args.rss:
                rss_run(procs, Path(args.root), args.rss, upstream, cores)
            else:
                ab(procs, {"this": ROOT, "other": Path(args.other)}, args.cases, args.rounds, args.seconds,
                   upstream, cores)
        finally:
            procs.stop_all()
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded("bench.server_path", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
