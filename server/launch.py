"""What `make run` runs: `gateway.py serve`, or demo mode on a machine with nothing set up.

A newcomer's first command should answer a request. When the configuration
declares a secrets file that does not exist and no provider is usable (none has
a key, and nothing listens where a keyless one points), the bundled mock
provider is started where that keyless provider points and the gateway is
served with a one-time admin token, printed once, as Jupyter prints its token.
With a secrets file or a provider key, this is exactly `gateway.py serve`.
`gateway.py serve` itself, and so the systemd unit, never starts a mock.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from dsl import loader
from dsl.compiler import compile_file, declared_secrets
from dsl.errors import ConfigError
from dsl.table import Provider, Table
from handlers.registry import HANDLERS

ROOT = Path(__file__).resolve().parent.parent
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.launch", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", default="routes.yaml", help="routes.yaml to serve")
    config = parser.parse_args(argv).config
    serve = [sys.executable, str(ROOT / "gateway.py"), "serve", "-c", config]
    if not _needs_demo(config, os.environ):
        os.execv(sys.executable, serve)
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
        token = secrets.token_urlsafe(24)
        secrets_file = Path(tmp) / "secrets.yaml"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(f"client_token: {token}\n")
        env = {**os.environ, "GATEWAY_SECRETS": str(secrets_file)}
        table = _compiled(config, env)
        local = _idle_local_provider(table) if table is not None else None
        if table is None or local is None or table.keys.authenticate(token)[0] is None:
            # The file does not take its secrets from $GATEWAY_SECRETS, or has nowhere to
            # put a mock: serve as configured, which names the missing file.
            os.execv(sys.executable, serve)
        return _run_demo(serve, env, table, local, token)


def _needs_demo(config: str, env: Mapping[str, str]) -> bool:
    """True when the declared secrets file is missing and no provider has a key."""
    try:
        path = declared_secrets(loader.load(config, env))
    except ConfigError:
        return False  # `serve` reports the problem
    return path is not None and not path.exists() and not _any_provider_key(config, env)


def _any_provider_key(config: str, env: Mapping[str, str]) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as empty:
        empty.write("{}\n")
        empty.flush()
        table = _compiled(config, {**env, "GATEWAY_SECRETS": empty.name})
    return table is None or any(provider.key for provider in table.providers.values())


def _compiled(config: str, env: Mapping[str, str]) -> Table | None:
    try:
        return compile_file(config, env, handlers=HANDLERS.rules)
    except ConfigError:
        return None


def _idle_local_provider(table: Table) -> Provider | None:
    """The first keyless provider on this machine where nothing listens yet."""
    for provider in table.providers.values():
        url = urlsplit(provider.base_url)
        if provider.key is None and url.hostname in _LOOPBACK and url.port and not _listening(url):
            return provider
    return None


def _listening(url: SplitResult) -> bool:
    try:
        with socket.create_connection((url.hostname, url.port), timeout=0.5):
            return True
    except OSError:
        return False


def _run_demo(serve: list[str], env: dict[str, str], table: Table, local: Provider, token: str) -> int:
    """Mock and gateway as children; signals go to the gateway; the mock stops with it."""
    where = urlsplit(local.base_url)
    mock = subprocess.Popen(
        [sys.executable, "-m", "mock_provider", "--host", str(where.hostname),
         "--port", str(where.port), "--delay-ms", "20", "--log-limit", "100"],
        cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True,
    )
    gateway = subprocess.Popen(serve, env=env)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: gateway.send_signal(number))
    try:
        base = f"http://{table.server.listen_host}:{table.server.listen_port}"
        if _wait_ready(f"{base}/healthz", gateway):
            print(_banner(base, local.name, token), flush=True)
        return gateway.wait()
    finally:
        if gateway.poll() is None:
            gateway.terminate()
            gateway.wait(30)
        mock.terminate()
        mock.wait(10)


def _wait_ready(url: str, gateway: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and gateway.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.1)
    return False


def _banner(base: str, provider: str, token: str) -> str:
    rule = "=" * 78
    return f"""
{rule}
DEMO MODE: no secrets file and no provider key, so the bundled mock provider
answers as the '{provider}' provider. Nothing here talks to a real LLM.

One-time admin token (printed only now; a new one at every start):

    {token}

  curl -s {base}/v1/chat/completions \\
    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\
    -d '{{"model": "default", "messages": [{{"role": "user", "content": "Hello"}}]}}'

To leave demo mode: copy secrets.example.yaml to secrets.yaml (or point
$GATEWAY_SECRETS at your secrets file) and set a provider key such as
OPENAI_API_KEY, then `make run` again. Ctrl-C stops the gateway and the mock.
{rule}
"""


if __name__ == "__main__":
    sys.exit(main())
