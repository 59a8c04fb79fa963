"""Real processes for the tests: the mock provider and the gateway, each on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import anthropic
import openai
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLIENT_TOKEN = "test-client-token-4f1c2a9e"
PROVIDER_KEY = "sk-test-provider-key-77d3b0"
ALT_KEY = "sk-test-alt-provider-key-19ce44"


def log_dir() -> Path:
    """Where every gateway of this run writes its log: one folder per run, shared by the
    xdist workers (tests/conftest.py names it before they start)."""
    return Path(os.environ.get("GATEWAY_TEST_LOGS") or Path(tempfile.gettempdir()) / f"gateway-test-logs-{os.getpid()}")


def _secret_values(path: Path) -> list[str]:
    """Every token and key in a secrets file: none may ever reach the gateway's log."""
    if not path.exists():
        return []
    document = yaml.safe_load(path.read_text()) or {}
    values = [document.get("client_token"), *(document.get("provider_keys") or {}).values()]
    values += [spec.get("token") for spec in (document.get("api_keys") or {}).values()]
    for spec in (document.get("mcp_servers") or {}).values():
        values += [spec.get("token"), *(spec.get("headers") or {}).values()]
    return [value for value in values if isinstance(value, str) and len(value) >= 8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mock:
    """A mock provider subprocess and helpers to talk to it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mock_provider", "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        assert ready, "mock provider did not start"
        line = self.proc.stdout.readline()
        found = re.fullmatch(r"mock provider listening on 127\.0\.0\.1:(\d+)\n", line)
        assert found, line
        self.port = int(found.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> tuple[str, str]:
        """Stop the process; return what it wrote to stdout after the first line and stderr."""
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err
        return out, err

    def openai(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-oai", max_retries=0, **kw)

    def anthropic(self, **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="sk-ant", max_retries=0, **kw)

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/_mock/requests", timeout=5) as r:
            return json.loads(r.read())

    def clear(self) -> None:
        req = urllib.request.Request(f"{self.url}/_mock/requests", method="DELETE")
        urllib.request.urlopen(req, timeout=5).read()

    def config(self, **settings: Any) -> dict[str, Any]:
        """POST settings to /_mock/config (GET when none), e.g. ``config(models_fault="500")``;
        ``config(models_fault=None, models=None)`` restores the defaults. Returns the settings."""
        data = json.dumps(settings).encode() if settings else None
        req = urllib.request.Request(f"{self.url}/_mock/config", data=data,
                                     method="POST" if settings else "GET")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def _faults(self, method: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(spec).encode() if spec is not None else None
        req = urllib.request.Request(f"{self.url}/_mock/faults", data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def script_fault(self, model: str, **script: Any) -> dict[str, Any]:
        """Script what the next requests for ``model`` meet, e.g. ``script_fault(m, fail=3,
        status=503, retry_after="2")``, ``script_fault(m, first_byte_delay_ms=500, times=1)``,
        ``script_fault(m, refuse=True)``, ``script_fault(m, recover=True)``. Returns faults()."""
        return self._faults("POST", {"model": model, **script})

    def clear_faults(self) -> None:
        """Drop every fault script and reset the per-model request counts."""
        self._faults("DELETE")

    def faults(self) -> dict[str, Any]:
        """``{"scripts": {model: script}, "seen": {model: requests}}``."""
        return self._faults("GET")

    def seen(self, model: str) -> int:
        """How many requests for ``model`` the mock has received since clear_faults()."""
        return self.faults()["seen"].get(model, 0)


def read_request(rfile: BinaryIO) -> bool:
    """Read one HTTP/1.1 request (its head, and a Content-Length body) from a raw test upstream's
    connection; False when the client closed it instead."""
    if not rfile.readline():
        return False
    length = 0
    while (line := rfile.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line[15:])
    rfile.read(length)
    return True


def write_config(directory: Path, routes: str, secrets: str | None = None) -> Path:
    """Write routes.yaml (and secrets.yaml) into `directory`; return the routes path."""
    directory.mkdir(parents=True, exist_ok=True)
    if secrets is not None:
        (directory / "secrets.yaml").write_text(secrets)
    path = directory / "routes.yaml"
    path.write_text(routes)
    return path


class Gateway:
    """`gateway.py serve` as a subprocess; stderr goes to a log file that tests can read."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.config = config
        self.secrets = {PROVIDER_KEY, ALT_KEY, CLIENT_TOKEN, *_secret_values(config.parent / "secrets.yaml")}
        self.port = port or int((env or {}).get("GATEWAY_PORT", 0)) or free_port()
        log_dir().mkdir(exist_ok=True)
        self.log_path = log_dir() / f"gateway-{self.port}-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "GATEWAY_PORT": str(self.port), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "gateway.py"), "serve", "-c", str(config)],
            cwd=ROOT,
            env=full_env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self.wait_ready()
        except RuntimeError:
            self._end()  # no orphan left running: a supervisor, its workers, its state process
            raise

    def wait_ready(self, timeout: float = 15) -> None:
        """Until /healthz answers and, with server.workers above 1, every worker serves."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.read() == b"OK" and self._workers_serving():
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")

    def _workers_serving(self) -> bool:
        """True once this gateway says it listens (another test's gateway may have answered on
        a port free_port gave out twice), and, under a supervisor, that all its workers serve."""
        log = self.log()
        if "listening on " not in log:
            return False
        workers = re.search(r"\) with (\d+) workers$", log, re.M)
        return workers is None or f"all {workers.group(1)} workers serving" in log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        self._end(timeout)
        self.log_file.close()
        leaked = [secret for secret in self.secrets if secret in self.log()]
        assert not leaked, f"{len(leaked)} provider key(s) or client token(s) in {self.log_path}"
        return self.proc.returncode

    def _end(self, timeout: float = 15) -> None:
        """SIGTERM (the supervisor stops its workers and state process), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def openai(self, token: str = CLIENT_TOKEN, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0, **kw)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, None, headers)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Raw HTTP with the path sent exactly as given (no normalisation of '..')."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            all_headers = {"Authorization": f"Bearer {CLIENT_TOKEN}", **(headers or {})}
            if body is not None:
                all_headers.setdefault("Content-Type", "application/json")
                all_headers["Content-Length"] = str(len(body))
            for name, value in all_headers.items():
                if value is not None:
                    conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def raw_get(self, target: bytes) -> bytes:
        """GET with the request target sent byte for byte (the client's token, Connection: close);
        the whole answer."""
        return self.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        + f"Authorization: Bearer {CLIENT_TOKEN}\r\n\r\n".encode())

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes (a request saying Connection: close) and read until the server closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    def metrics(self) -> str:
        return self.get("/metrics")[2].decode()

    def memory_kib(self, field: str = "VmRSS") -> int:
        """A memory figure of the process from /proc/<pid>/status, in KiB: VmRSS (resident
        now) or VmHWM (the peak so far)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for the gateway (pid {self.proc.pid})")


def estimating_count_tokens_gateway(mock: Mock, directory: Path) -> Gateway:
    """A gateway serving /v1/messages/count_tokens with no Anthropic provider to ask: it
    estimates the count itself (and so parses the request)."""
    routes = f"""
version: 1
server: {{listen: "127.0.0.1:${{GATEWAY_PORT}}"}}
secrets: secrets.yaml
providers: {{mock: {{url: "{mock.url}/v1"}}}}
routes:
  - {{match: GET /healthz, handler: health}}
  - {{match: POST /v1/messages/count_tokens, handler: count_tokens, ingress: anthropic}}
"""
    return Gateway(write_config(directory, routes, f"client_token: {CLIENT_TOKEN}\n"))


def access_line(gateway: Gateway, request_id: str) -> dict[str, Any]:
    """The access-log line of one request (written in batches, every 10 ms)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in gateway.log().splitlines()
                 if line.startswith("{") and f'"request_id":"{request_id}"' in line]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.05)


def metric(text: str, series: str) -> float:
    """The value of one series (name and labels, as /metrics writes them); 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class RedisServer:
    """A real `redis-server` on a free loopback port, persisting nothing; `stop()` kills it
    (as an outage would) and `start()` brings it back, empty, on the same port."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no",
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class McpTestServer:
    """The tests' MCP server (tests/mcp_server.py, the `mcp` package's own server) in a
    subprocess on a loopback port; `restart` brings it back on the same port."""

    def __init__(self, port: int | None = None, token: str | None = None, start: bool = True) -> None:
        self.port = port or free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc: subprocess.Popen[str] | None = None
        if start:
            self.start()

    def start(self) -> None:
        args = [sys.executable, "-m", "tests.mcp_server", "--port", str(self.port)]
        if self.token:
            args += ["--token", self.token]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        assert ready, "MCP server did not start"
        line = self.proc.stdout.readline()
        assert line.startswith("mcp server listening on"), line + self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# The start of a routes.yaml for a gateway of a test's own in front of the mock provider:
# its port, its secrets.yaml, breakers off (tests of other features share fault models),
# and the mock as an OpenAI provider `mock` and an Anthropic provider `claude`.
OWN_ROUTES = f"""version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
  drain_timeout: 5s
secrets: secrets.yaml
breakers: {{enabled: false}}
providers:
  mock: {{url: "${{MOCK_URL}}/v1", api_key: {PROVIDER_KEY}}}
  claude: {{url: "${{MOCK_URL}}/v1", format: anthropic, api_key: {PROVIDER_KEY}}}
"""


@contextlib.contextmanager
def own_gateway(mock: Mock, directory: Path, routes: str, secrets: str | None = None) -> Iterator[Gateway]:
    """A gateway of OWN_ROUTES + `routes` (and `secrets`, else the client token alone) in front of
    `mock`; on leaving, it must stop cleanly with no traceback in its log."""
    config = write_config(directory, OWN_ROUTES + routes, secrets or f"client_token: {CLIENT_TOKEN}\n")
    gateway = Gateway(config, env={"MOCK_URL": mock.url})
    try:
        yield gateway
    finally:
        code = gateway.stop()
    assert code == 0, gateway.log()
    assert "Traceback" not in gateway.log(), gateway.log()
