"""Benchmark: the gateway against a canned provider direct and behind nginx.

One command, `python bench/run.py` (`make bench`), puts the same wrk load on five
targets in one run and prints a table:

  direct        wrk -> canned provider                 (the ceiling: no proxy at all)
  nginx         wrk -> nginx -> canned provider        (the floor of any proxy's cost)
  gateway       wrk -> gateway.py -> canned provider   (what we ship: auth, metrics and
                access log on)
  gateway-conv  the same gateway process, but model bench-conv: OpenAI requests
                converted to the Anthropic format for the same canned provider, and
                its answers and SSE streams converted back (the cost of conversion)
  gateway-redact  the same gateway process, model bench-redact: the gateway target
                with a redaction policy (secrets, pii, entropy) on requests and answers

The canned provider is nginx answering the fixtures in bench/fixtures/ (see
canned.conf.template): faster than any proxy in front of it, so that it bounds
none of the rows. Each target gets non-streaming and streaming chat completions
at concurrency 1 and 32. The server under test is pinned to one core and wrk
plus the canned provider (when it is not the thing measured) to another, so the
targets compete for the same CPU budget, and each row says the server's CPU per
request. Absolute numbers depend on the machine and its neighbours; the
gateway/nginx ratios are the result (gateway-conv/gateway: what a format conversion
adds; gateway-redact/gateway: what redaction adds). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WRK_SCRIPT = BENCH_DIR / "wrk" / "chat.lua"
NGINX_TEMPLATE = BENCH_DIR / "nginx.conf.template"
CANNED_TEMPLATE = BENCH_DIR / "canned.conf.template"
FIXTURES = BENCH_DIR / "fixtures"
ROUTES_TEMPLATE = BENCH_DIR / "routes.bench.yaml"
SECRETS_FILE = BENCH_DIR / "secrets.bench.yaml"


def _client_token() -> str:
    """The bearer token, read from secrets.bench.yaml so that it has one source."""
    m = re.search(r"^client_token:\s*(\S+)", SECRETS_FILE.read_text(), re.MULTILINE)
    return m.group(1) if m else "bench-token-loopback-only"


TOKEN = _client_token()
# The text of every canned answer (the OpenAI and the Anthropic fixtures, JSON and SSE, agree).
ANSWER_TEXT = json.loads((FIXTURES / "openai-chat.json").read_text())["choices"][0]["message"]["content"]
UPSTREAM_MODEL = "gpt-4o-mini"  # what wrk asks the canned provider for, direct or via nginx
GATEWAY_MODEL = "bench"  # the agent in routes.bench.yaml: an OpenAI-format provider
CONV_MODEL = "bench-conv"  # the agent on the Anthropic-format provider (same canned server)
CONV_PROVIDER = "canned-anthropic"  # its provider in routes.bench.yaml
REDACT_MODEL = "bench-redact"  # the agent of the OpenAI provider with a redaction policy
TARGETS = ("direct", "nginx", "gateway", "gateway-conv", "gateway-redact")
MODELS = {"direct": UPSTREAM_MODEL, "nginx": UPSTREAM_MODEL, "gateway": GATEWAY_MODEL,
          "gateway-conv": CONV_MODEL, "gateway-redact": REDACT_MODEL}
# Which started process each target measures; direct measures the canned provider, which
# every target needs, and gateway-conv shares the gateway's process (same config, same core).
SERVER_PROC = {"direct": None, "nginx": "nginx", "gateway": "gateway", "gateway-conv": "gateway",
               "gateway-redact": "gateway"}
HEADLINE = ("gateway", "nginx")  # the ratio the benchmark exists for
CONVERSION = ("gateway-conv", "gateway")  # the cost of OpenAI <-> Anthropic conversion
REDACTION = ("gateway-redact", "gateway")  # the cost of redacting requests and answers
RATIOS = (("nginx", "direct"), ("gateway", "direct"), HEADLINE, CONVERSION, REDACTION)
# Median latency added, per scenario: (column, JSON key, slower target, faster target).
P50_DELTAS = (("gw-nginx p50", "gateway-nginx_p50_ms", "gateway", "nginx"),
              ("conv-gw p50", "gateway-conv-gateway_p50_ms", "gateway-conv", "gateway"))
INSTALL_HINT = "apt-get install -y nginx wrk   (Debian/Ubuntu; needs root or sudo)"


class BenchError(Exception):
    """A failure that stops one target (or the run) with a message, not a traceback."""


# --------------------------------------------------------------------------- settings


def parse_seconds(text: str) -> int:
    """Parse '10s', '10', '1m' to whole seconds: wrk's -d takes whole seconds only."""
    m = re.fullmatch(r"\s*(\d+)\s*(s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration in whole seconds: {text!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_concurrency(text: str) -> list[int]:
    """Parse '1,32' into [1, 32]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ints: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency values must be >= 1")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; --quick trades accuracy for a short smoke run."""
    p = argparse.ArgumentParser(
        description="Benchmark the gateway against a canned provider direct and behind nginx.",
    )
    p.add_argument("--duration", type=parse_seconds, default=10,
                   help="measured time per scenario, whole seconds (default 10s)")
    p.add_argument("--warmup", type=parse_seconds, default=2,
                   help="unmeasured load before each scenario (default 2s; 0 to skip)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --duration 3s --warmup 1s")
    p.add_argument("--concurrency", type=parse_concurrency, default=[1, 32],
                   help="comma-separated connection counts (default 1,32)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"comma-separated subset of {','.join(TARGETS)} (default all)")
    p.add_argument("--json", metavar="OUT.json", type=Path,
                   help="also write the results as JSON to this file")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (rendered configs, server logs, wrk output)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3, 1
    if args.duration < 1:
        p.error("--duration must be at least 1s")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        p.error(f"--targets: unknown {unknown}; choose from {','.join(TARGETS)}")
    args.targets = [t for t in TARGETS if t in targets]  # fixed order, as in TARGETS
    return args


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Scenario:
    """One load shape: the same for every target."""

    stream: bool
    concurrency: int

    @property
    def name(self) -> str:
        return f"{'stream' if self.stream else 'json'} c={self.concurrency}"


@dataclass
class Result:
    """One target under one scenario, as wrk measured it."""

    target: str
    scenario: str
    stream: bool
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors: any makes the row suspect
    error_detail: dict[str, int] = field(default_factory=dict)
    server_cpu_pct: float | None = None  # CPU of the server under test, % of one core
    cpu_us_per_request: float | None = None  # its CPU time per request answered, in µs
    load_core_pct: float | None = None  # how busy the wrk (+ canned provider) core was


# --------------------------------------------------------------------------- processes


class Processes:
    """Every child process of the run, so that all of them are stopped on any exit.

    Each child gets its own session (and so its own process group): Ctrl-C reaches
    only this script, which then stops the children in order, and a signal to the
    group also reaches what a child forked (nginx workers, gateway workers).
    """

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def start(self, name: str, argv: list[str], core: int | None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start argv pinned to core (None: unpinned), output to <logdir>/<name>.log."""
        if core is not None:
            argv = ["taskset", "-c", str(core), *argv]
        log = open(self.log_path(name), "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.running[name] = proc
        self._logs[name] = log
        return proc

    def log_path(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The end of a child's output, to explain why it failed."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM the child's process group; SIGKILL what is left after `grace` s."""
        proc = self.running.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        # The leader may be gone while forked children linger: sweep the group.
        self._signal_group(proc, signal.SIGKILL)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(name, grace=5.0)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def group_stats(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, /proc/<pid>/stat fields after "pid (comm) ") of every live process in a
    process group: nginx's master and workers, the gateway's supervisor and workers."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:  # field 5 of stat: pgrp
            yield int(stat.parent.name), fields


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds of every live process in a process group.

    Why: on a shared machine, whether the server under test used its whole core
    says more than its requests/s alone.
    """
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in group_stats(pgid))  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[int]:
    return [pid for pid, _ in group_stats(pgid)]


def core_times(core: int | None) -> tuple[int, int]:
    """(busy, total) jiffies of one core from /proc/stat; (0, 0) when unpinned.

    Why: when the load core (wrk + canned provider) is the busy one, a row is bounded by
    the load side, not by the server under test, and must be read that way.
    """
    if core is None:
        return 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
            busy = user + nice + system + irq + softirq
            return busy, busy + idle + iowait + steal
    return 0, 0


def pin(pgid: int, core: int | None) -> None:
    """Move a running process group (every process, every thread) to another core."""
    if core is None:
        return
    for pid in group_pids(pgid):
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --------------------------------------------------------------------------- HTTP


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def http(method: str, url: str, body: dict[str, Any] | None = None,
         token: str | None = TOKEN, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """One request; returns (status, content-type, body) and never raises on 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def wait_ready(procs: Processes, name: str, url: str, expect: bytes, timeout: float) -> None:
    """Poll url until its body contains `expect`; fail early if the process died."""
    proc = procs.running[name]
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with code {proc.returncode} before it was ready:\n"
                             f"{procs.log_tail(name)}")
        try:
            status, _, body = http("GET", url, token=None, timeout=1.0)
            if status == 200 and expect in body:
                return
            last = f"HTTP {status}: {body[:80]!r}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"{name} not ready at {url} after {timeout:.0f}s ({last}):\n"
                     f"{procs.log_tail(name)}")


def check_answers(base: str, model: str) -> list[str]:
    """One plain and one streaming request, checked, before any load; returns their ids.

    Why: wrk only counts statuses, so a target answering 200 with the wrong body
    (or a non-streamed body to a streaming request) would otherwise look fast. Every
    target must answer the canned text, whichever format its provider speaks.
    """
    msgs = [{"role": "user", "content": "Say hello."}]
    url = f"{base}/v1/chat/completions"
    status, ctype, body = http("POST", url, {"model": model, "messages": msgs, "stream": False})
    if status != 200:
        raise BenchError(f"POST {url} (json) -> HTTP {status}: {body[:300]!r}")
    try:
        answer = json.loads(body)
        text = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(f"POST {url} (json): not a chat completion: {body[:300]!r}") from None
    if text != ANSWER_TEXT:
        raise BenchError(f"POST {url} (json): answer {text!r}, not the canned {ANSWER_TEXT!r}")

    status, ctype, body = http("POST", url, {"model": model, "messages": msgs, "stream": True})
    if status != 200:
        raise BenchError(f"POST {url} (stream) -> HTTP {status}: {body[:300]!r}")
    if "text/event-stream" not in ctype:
        raise BenchError(f"POST {url} (stream): Content-Type {ctype!r}, not text/event-stream")
    events = [ln for ln in body.decode(errors="replace").splitlines() if ln.startswith("data:")]
    if not events:
        raise BenchError(f"POST {url} (stream): no SSE data events: {body[:300]!r}")
    try:
        first = json.loads(events[0][5:])
        first["choices"]
    except (ValueError, KeyError, TypeError):
        first = None
    if not isinstance(first, dict):
        raise BenchError(f"POST {url} (stream): not a chat completion chunk: {events[0][:300]!r}")
    if events[-1][5:].strip() != "[DONE]":  # a stream cut short (a converter failing) is fast too
        raise BenchError(f"POST {url} (stream): does not end with data: [DONE]: {events[-1][:300]!r}")
    try:
        text = "".join(json.loads(event[5:])["choices"][0]["delta"].get("content") or ""
                       for event in events[:-1] if json.loads(event[5:])["choices"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise BenchError(f"POST {url} (stream): an event is not a chat completion chunk") from None
    if text != ANSWER_TEXT:
        raise BenchError(f"POST {url} (stream): streamed {text!r}, not the canned {ANSWER_TEXT!r}")
    return [str(answer.get("id")), str(first.get("id"))]


def check_chunked(base: str) -> None:
    """The canned provider must send its SSE chunked, as providers do (a stream with a
    Content-Length would spare every proxy the chunked decoding it does in production)."""
    for path in ("/v1/chat/completions", "/v1/messages"):
        conn = HTTPConnection(base.removeprefix("http://"), timeout=10)
        try:
            conn.request("POST", path, json.dumps({"model": UPSTREAM_MODEL, "stream": True}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        if resp.getheader("Transfer-Encoding") != "chunked" or resp.getheader("Content-Length"):
            raise BenchError(f"the canned provider's {path} stream is not sent chunked: "
                             f"{resp.getheaders()}")


# --------------------------------------------------------------------------- wrk


def run_wrk(procs: Processes, base: str, model: str, sc: Scenario, seconds: int,
            core: int | None, label: str) -> dict[str, Any]:
    """Run wrk once and return the BENCH_RESULT numbers its Lua done() prints."""
    env = dict(os.environ, BENCH_MODEL=model, BENCH_STREAM="1" if sc.stream else "0",
               BENCH_TOKEN=TOKEN)
    argv = ["wrk", "-t1", f"-c{sc.concurrency}", f"-d{seconds}s", "--timeout", "10s",
            "--latency", "-s", str(WRK_SCRIPT), base]
    proc = procs.start(label, argv, core, env=env)
    try:
        proc.wait(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {label}") from None
    finally:
        procs.stop(label)
    output = procs.log_path(label).read_text(errors="replace")
    m = re.search(r"^BENCH_RESULT (\{.*\})$", output, re.MULTILINE)
    if proc.returncode != 0 or not m:
        raise BenchError(f"wrk failed ({label}, exit {proc.returncode}):\n{output[-1500:]}")
    return json.loads(m.group(1))


@dataclass
class Target:
    """A started, checked server: where to send load and what to watch."""

    name: str
    base: str  # http://127.0.0.1:PORT
    model: str
    pgid: int  # process group of the server under test, for its CPU use
    proc: str | None  # its name in Processes; None for direct (the canned provider serves all)


def measure(procs: Processes, target: Target, sc: Scenario, args: argparse.Namespace,
            load_core: int | None) -> Result:
    """Warm up, then measure one scenario against one target."""
    tag = f"{target.name}-{'stream' if sc.stream else 'json'}-c{sc.concurrency}"
    if args.warmup:
        run_wrk(procs, target.base, target.model, sc, args.warmup, load_core, f"wrk-{tag}-warmup")
    cpu0, (busy0, total0) = group_cpu_seconds(target.pgid), core_times(load_core)
    t0 = time.monotonic()
    raw = run_wrk(procs, target.base, target.model, sc, args.duration, load_core, f"wrk-{tag}")
    cpu_s = group_cpu_seconds(target.pgid) - cpu0
    cpu_pct = 100.0 * cpu_s / (time.monotonic() - t0)
    busy1, total1 = core_times(load_core)
    load_pct = 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
    detail = {k[4:]: int(v) for k, v in raw.items() if k.startswith("err_") and v}
    res = Result(
        target=target.name, scenario=sc.name, stream=sc.stream, concurrency=sc.concurrency,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000, mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000, requests=int(raw["requests"]),
        errors=sum(detail.values()), error_detail=detail,
        server_cpu_pct=round(cpu_pct, 1),
        cpu_us_per_request=round(1e6 * cpu_s / raw["requests"], 1) if raw["requests"] else None,
        load_core_pct=round(load_pct, 1) if load_pct is not None else None,
    )
    flag = f"  ERRORS {detail}" if res.errors else ""
    print(f"  {target.name:14} {sc.name:12} {res.rps:9.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
          f"p99 {res.p99_ms:7.2f} ms  server cpu {res.server_cpu_pct:4.0f}% "
          f"({_fmt(res.cpu_us_per_request, '.0f')} µs/req)  "
          f"load core {_fmt(res.load_core_pct, '.0f', '%')}{flag}", flush=True)
    return res


# --------------------------------------------------------------------------- targets


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports, picked at start (all bound at once, then freed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_nginx() -> str | None:
    """nginx lives in /usr/sbin, which a non-root PATH often lacks."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render(template: Path, values: dict[str, str], pattern: str) -> str:
    """Fill placeholders; refuse to leave one unfilled (a silent typo would break a target)."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(pattern.format(key), value)
    left = re.findall(re.escape(pattern.format("@")).replace("@", r"[A-Z_]+"), text)
    if left:
        raise BenchError(f"{template.name}: unfilled placeholders {sorted(set(left))}")
    return text


def start_nginx_conf(procs: Processes, name: str, tmp: Path, nginx: str, template: Path,
                     values: dict[str, str], core: int | None) -> subprocess.Popen[bytes]:
    """Render an nginx config into the temp dir as <name>.conf, check it, start nginx in
    the foreground (its pid file and temp paths in the temp dir too)."""
    conf = tmp / f"{name}.conf"
    conf.write_text(render(template, {
        # As root, nginx would hand its worker to `nobody`, which cannot use the temp dir.
        "USER_DIRECTIVE": "user root;" if os.geteuid() == 0 else "",
        "TMPDIR": str(tmp),
        **values,
    }, "{{{{{}}}}}"))
    pid = f"pid {tmp}/{name}.pid; error_log stderr warn;"
    check = subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-c", str(conf), "-p", str(tmp),
                            "-g", pid], capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError(f"nginx -t rejected {conf}:\n{check.stderr}")
    return procs.start(name, [nginx, "-e", "stderr", "-c", str(conf), "-p", str(tmp),
                              "-g", f"daemon off; {pid}"], core)


def start_nginx(procs: Processes, tmp: Path, nginx: str, port: int, upstream_port: int,
                core: int | None) -> subprocess.Popen[bytes]:
    """nginx as a reverse proxy in front of the upstream (nginx.conf.template)."""
    return start_nginx_conf(procs, "nginx", tmp, nginx, NGINX_TEMPLATE, {
        "UPSTREAM_PORT": str(upstream_port), "LISTEN_PORT": str(port)}, core)


def start_canned(procs: Processes, tmp: Path, nginx: str, port: int, core: int | None,
                 big_bytes: int = 0) -> subprocess.Popen[bytes]:
    """The canned provider: nginx answering bench/fixtures/ (canned.conf.template), and
    POST /v1/audio/speech with `big_bytes` of zeros (a sparse file: no disk used)."""
    big = tmp / "canned-big.bin"
    with open(big, "wb") as f:
        f.truncate(big_bytes)
    return start_nginx_conf(procs, "canned", tmp, nginx, CANNED_TEMPLATE, {
        "FIXTURES": str(FIXTURES), "LISTEN_PORT": str(port), "BIG_FILE": str(big)}, core)


def bench_routes(port: int, secrets: Path, upstream_port: int) -> tuple[str, dict[str, str]]:
    """routes.bench.yaml for a gateway on `port` in front of the canned provider on
    `upstream_port`, placeholders filled in; and their values."""
    values = {
        "BENCH_GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "BENCH_SECRETS": str(secrets),
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1",
    }
    return render(ROUTES_TEMPLATE, values, "${{{}}}"), values


def start_gateway(procs: Processes, tmp: Path, port: int, upstream_port: int,
                  core: int | None) -> subprocess.Popen[bytes]:
    """Render routes.bench.yaml (ports filled in) and start the gateway."""
    if not (REPO_ROOT / "gateway.py").exists():
        raise BenchError("gateway.py not found in the repo root")
    secrets = tmp / "secrets.bench.yaml"
    shutil.copyfile(SECRETS_FILE, secrets)
    secrets.chmod(0o600)  # a secrets file readable by others may be refused
    text, values = bench_routes(port, secrets, upstream_port)
    routes = tmp / "routes.bench.yaml"
    routes.write_text(text)
    env = dict(os.environ, **values)  # the gateway's own ${VAR} expansion would agree
    return procs.start("gateway", [sys.executable, "gateway.py", "serve", "-c", str(routes)],
                       core, env=env)


# --------------------------------------------------------------------------- report


def tool_version(argv: list[str]) -> str:
    """First line a tool prints about its version (nginx writes it to stderr)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_info(nginx: str | None) -> dict[str, Any]:
    """What the numbers were measured on: needed to judge them at all."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": tool_version(["wrk", "--version"]).split(" [")[0],
        "nginx": tool_version([nginx, "-v"]) if nginx else None,
    }


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """Throughput ratios and median latency added, per scenario; gateway/nginx is the headline."""
    by = {(r.target, r.scenario): r for r in results}
    out = []
    for sc in dict.fromkeys(r.scenario for r in results):
        row: dict[str, Any] = {"scenario": sc, "suspect": []}
        for a, b in RATIOS:
            ra, rb = by.get((a, sc)), by.get((b, sc))
            row[f"{a}/{b}"] = round(ra.rps / rb.rps, 3) if ra and rb and rb.rps else None
            # The same ratio from CPU per request: what one core would give each at 100 %,
            # unmoved by neighbours that take part of the server core.
            row[f"{a}/{b} cpu"] = (round(rb.cpu_us_per_request / ra.cpu_us_per_request, 3)
                                   if ra and rb and ra.cpu_us_per_request and rb.cpu_us_per_request
                                   else None)
            if (ra and ra.errors) or (rb and rb.errors):
                row["suspect"].append(f"{a}/{b}")  # a row under it had errors
        # What the gateway adds per request over nginx, and conversion over the
        # native gateway path, at the median.
        for _, key, a, b in P50_DELTAS:
            ra, rb = by.get((a, sc)), by.get((b, sc))
            row[key] = round(ra.p50_ms - rb.p50_ms, 3) if ra and rb else None
        out.append(row)
    return out


def print_report(info: dict[str, Any], results: list[Result], ratio_rows: list[dict[str, Any]],
                 failures: dict[str, str], args: argparse.Namespace) -> None:
    """The table, the ratios, and the caveat."""
    print()
    print(f"Results ({args.duration}s per scenario after {args.warmup}s warm-up; "
          f"wrk -t1; server under test on one core, wrk + canned provider on another)")
    head = f"{'target':14} {'scenario':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} " \
           f"{'srv cpu%':>8} {'µs/req':>7} {'load cpu%':>9} {'errors':>7}"
    print(head)
    print("-" * len(head))
    last = None
    for r in results:
        if last and r.target != last:
            print()
        last = r.target
        print(f"{r.target:14} {r.scenario:12} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
              f"{r.server_cpu_pct:8.0f} {_fmt(r.cpu_us_per_request, '.0f'):>7} "
              f"{_fmt(r.load_core_pct, '.0f'):>9} {r.errors:7d}")
    for target, why in failures.items():
        print(f"{target:14} not measured: {why.splitlines()[0]}")

    print()
    print("Throughput ratios (req/s of the first / req/s of the second; 1.00 = as fast)")
    cols = [f"{a}/{b}" for a, b in RATIOS]
    widths = [max(15, len(c)) for c in cols]
    head = f"{'scenario':12} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)) \
        + "".join(f" {name:>13}" for name, *_ in P50_DELTAS)
    print(head)
    print("-" * len(head))
    for row in ratio_rows:
        cells = " ".join(f"{_fmt(row[c], '.2f') + ('!' if c in row['suspect'] else ''):>{w}}"
                         for c, w in zip(cols, widths, strict=True))
        added = "".join(f" {_fmt(row[key], '+.2f', ' ms'):>13}" for _, key, *_ in P50_DELTAS)
        print(f"{row['scenario']:12} {cells}{added}")

    print()
    print("CPU ratios (µs/req of the second / µs/req of the first: the throughput ratio each would "
          "reach\n"
          "with its whole core; robust to neighbours taking part of the server core)")
    head = f"{'scenario':12} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    print(head)
    print("-" * len(head))
    for row in ratio_rows:
        cells = " ".join(f"{_fmt(row[c + ' cpu'], '.3f') + ('!' if c in row['suspect'] else ''):>{w}}"
                         for c, w in zip(cols, widths, strict=True))
        print(f"{row['scenario']:12} {cells}")

    print()
    print(f"Machine: nproc {info['nproc']} ({info['cpu_model']}), "
          f"loadavg at start {' '.join(map(str, info['loadavg']))}, at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{info['wrk']}; {info['nginx'] or 'nginx not used'}; Python {info['python']}")
    print("Absolute numbers mean little on a shared or virtual machine (neighbours, CPU "
          "steal, frequency);\nthe ratios, measured in one run under the same load, are "
          "the result. gateway/nginx is the headline;\ngateway-conv/gateway is what the "
          "OpenAI <-> Anthropic conversion costs (same gateway process, same load).")
    if any(r.errors for r in results):
        print("WARNING: some rows had errors (non-2xx answers or socket errors); their req/s "
              "and the ratios marked ! are not comparable.")


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


# --------------------------------------------------------------------------- main


def gateway_process(procs: Processes, tmp: Path, ports: dict[str, int], server_core: int | None,
                    started: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The one gateway process that gateway and gateway-conv share, started on first use.

    `started` remembers it (or why it failed to start), so that the second target
    neither starts another one nor retries a start that failed.
    """
    if isinstance(started.get("gateway"), BenchError):
        raise BenchError(f"the gateway process did not start: {started['gateway']}")
    proc = started.get("gateway")
    if proc is None:
        try:
            proc = start_gateway(procs, tmp, ports["gateway"], ports["canned"], server_core)
            base = f"http://127.0.0.1:{ports['gateway']}"
            wait_ready(procs, "gateway", f"{base}/healthz", b"OK", timeout=30)
        except BenchError as e:
            procs.stop("gateway")
            started["gateway"] = e
            raise
        started["gateway"] = proc
        status, _, _ = http("POST", f"{base}/v1/chat/completions",
                            {"model": GATEWAY_MODEL, "messages": []}, token=None)
        if status not in (401, 403):
            print(f"  WARNING: a request without a token got HTTP {status}: is auth on?")
    if proc.poll() is not None:
        raise BenchError(f"the gateway exited with code {proc.returncode}:\n"
                         f"{procs.log_tail('gateway')}")
    return proc


def check_conversion(ids: list[str]) -> None:
    """Warn when the answers of gateway-conv do not look converted from Anthropic's.

    Why: converted or not, they are OpenAI chat completions; if bench-conv reached
    the canned provider in the OpenAI format, its rows would silently measure the native path.
    The canned Anthropic messages have ids `msg_...`, its chat completions
    `chatcmpl-...`, and the gateway passes the upstream id on. A warning, not a
    failure: that id is the gateway's choice, not a contract of the bench.
    """
    if not all(i.startswith("msg_") for i in ids):
        print(f"  WARNING: answer ids {ids}, not the canned Anthropic msg_...: does "
              f"{CONV_MODEL} go through the Anthropic-format provider {CONV_PROVIDER!r}?")


def start_target(procs: Processes, name: str, tmp: Path, nginx: str,
                 ports: dict[str, int], canned_pid: int, server_core: int | None,
                 started: dict[str, Any]) -> Target:
    """Start one target's server, wait for it, check its answers.

    direct has no server of its own (the canned provider is shared) and gateway-conv
    shares the gateway's process: same config, same core, another model.
    """
    if name == "direct":
        target = Target(name, f"http://127.0.0.1:{ports['canned']}", UPSTREAM_MODEL, canned_pid,
                        None)
    elif name == "nginx":
        proc = start_nginx(procs, tmp, nginx, ports["nginx"], ports["canned"], server_core)
        target = Target(name, f"http://127.0.0.1:{ports['nginx']}", UPSTREAM_MODEL, proc.pid,
                        "nginx")
        # nginx has no health route: the canned provider's, proxied, proves the whole chain.
        wait_ready(procs, name, f"{target.base}/_canned/health", b"OK", timeout=10)
    else:  # gateway, gateway-conv, gateway-redact: the same process, asked for another model
        proc = gateway_process(procs, tmp, ports, server_core, started)
        target = Target(name, f"http://127.0.0.1:{ports['gateway']}", MODELS[name], proc.pid,
                        SERVER_PROC[name])
    ids = check_answers(target.base, target.model)
    if name == "gateway-conv":
        check_conversion(ids)
    return target


def stop_unused(procs: Processes, live: list[Target]) -> None:
    """Stop the servers no live target measures any more (nginx, the gateway)."""
    used = {t.proc for t in live}
    for name in ("nginx", "gateway"):
        if name not in used:
            procs.stop(name)


def preflight(args: argparse.Namespace) -> tuple[str, tuple[int | None, int | None]]:
    """Check the tools and pick the cores; fail with an install hint, not a traceback."""
    missing = []
    nginx = find_nginx()
    if not nginx:
        missing.append("nginx")
    if not shutil.which("wrk"):
        missing.append("wrk")
    if missing or not nginx:
        raise BenchError(f"missing: {', '.join(missing)}. Install with:\n    {INSTALL_HINT}")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2 and shutil.which("taskset"):
        return nginx, (cores[0], cores[1])
    print("WARNING: fewer than 2 usable cores (or no taskset): running unpinned; "
          "the server and the load generator will share CPU.", file=sys.stderr)
    return nginx, (None, None)


def run(args: argparse.Namespace) -> int:
    """The whole run; returns the exit code (1: a target failed or answered errors)."""
    nginx, (server_core, load_core) = preflight(args)
    info = machine_info(nginx)
    scenarios = [Scenario(stream, c) for stream in (False, True) for c in args.concurrency]
    per_target = len(scenarios) * (args.duration + args.warmup)
    print(f"nproc {info['nproc']}; targets {', '.join(args.targets)}; "
          f"{len(scenarios)} scenarios x ({args.warmup}s warm-up + {args.duration}s) "
          f"= about {per_target * len(args.targets)}s of load")
    if server_core is not None:
        print(f"pinning: server under test -> core {server_core}; wrk (-t1) and the canned "
              f"provider (when not measured) -> core {load_core}")

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    procs = Processes(tmp)
    results: list[Result] = []
    failures: dict[str, str] = {}
    ports = dict(zip(("canned", "nginx", "gateway"), free_ports(3), strict=True))
    try:
        # The canned provider serves every target; it is moved between the cores as the
        # roles change.
        canned = start_canned(procs, tmp, nginx, ports["canned"], load_core)
        canned_base = f"http://127.0.0.1:{ports['canned']}"
        wait_ready(procs, "canned", f"{canned_base}/_canned/health", b"OK", timeout=10)
        check_answers(canned_base, UPSTREAM_MODEL)
        check_chunked(canned_base)

        print("\nstarting and checking the targets", flush=True)
        live: list[Target] = []
        started: dict[str, Any] = {}  # the gateway process, shared by gateway and gateway-conv
        for name in args.targets:
            try:
                live.append(start_target(procs, name, tmp, nginx, ports, canned.pid,
                                         server_core, started))
                print(f"  {name:14} ready", flush=True)
            except BenchError as e:
                failures[name] = str(e)
                print(f"  {name:14} FAILED: {e}", flush=True)
        stop_unused(procs, live)  # a server whose target(s) all failed their checks

        # Interleaved: each scenario runs on every target back to back, so that the
        # ratios compare runs seconds apart, not minutes (drift on shared machines).
        for sc in scenarios:
            print(f"\n[{sc.name}]", flush=True)
            for target in list(live):
                # The canned provider gets the server core only when it is the server under test.
                pin(canned.pid, server_core if target.name == "direct" else load_core)
                try:
                    results.append(measure(procs, target, sc, args, load_core))
                except BenchError as e:
                    failures[target.name] = f"{sc.name}: {e}"
                    print(f"  {target.name:14} FAILED: {e}", flush=True)
                    live.remove(target)
                    stop_unused(procs, live)  # not the gateway while gateway-conv needs it
    finally:
        procs.stop_all()
        if args.keep_tmp:
            print(f"\nkept temp dir (configs, logs, wrk output): {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results.sort(key=lambda r: args.targets.index(r.target))  # stable: scenario order kept
    ratio_rows = ratios(results)
    print_report(info, results, ratio_rows, failures, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": info,
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                         "concurrency": args.concurrency, "targets": args.targets,
                         "models": {t: MODELS[t] for t in args.targets},
                         "wrk_threads": 1,
                         "server_core": server_core, "load_core": load_core},
            "results": [asdict(r) for r in results],
            "ratios": ratio_rows,
            "failures": failures,
        }, indent=2) + "\n")
        print(f"wrote {args.json}")
    # A row with errors is no result either: make `make bench` say so.
    return 1 if failures or any(r.errors for r in results) else 0


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so children are stopped."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def guarded(name: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """`run(args)` as a command: a BenchError is exit 2 with its message, Ctrl-C or SIGTERM
    exit 130 (its `finally` having stopped every process it started)."""
    try:
        with sigterm_as_interrupt():
            return run(args)
    except BenchError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; all processes stopped", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return guarded("bench", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
