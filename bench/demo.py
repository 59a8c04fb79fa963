#!/usr/bin/env python3
"""`make demo`: the shipped routes.yaml served against the bundled mock provider.

Starts the mock where routes.yaml's `local` provider points (127.0.0.1:8081) and the
gateway on 127.0.0.1:8080 with a throwaway demo token, prints a curl line, and runs
until Ctrl-C. No provider keys and no network needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_TOKEN = "demo-token-not-for-production"


def wait_for(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer; is port 8080 or 8081 already taken?")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
        secrets = Path(tmp) / "secrets.yaml"
        secrets.write_text(f"client_token: {DEMO_TOKEN}\n")
        env = {**os.environ, "GATEWAY_SECRETS": str(secrets)}
        mock = subprocess.Popen([sys.executable, "-m", "bench.mock_provider", "--port", "8081",
                                 "--delay-ms", "50"], cwd=ROOT, stdout=subprocess.DEVNULL)
        gateway = subprocess.Popen([sys.executable, "gateway.py", "serve", "-c", "routes.yaml"],
                                   cwd=ROOT, env=env)
        try:
            wait_for("http://127.0.0.1:8081/_mock/health")
            wait_for("http://127.0.0.1:8080/healthz")
            print(f"""
Gateway on http://127.0.0.1:8080, mock provider on :8081. Try:

  curl -s http://127.0.0.1:8080/v1/chat/completions \\
    -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Content-Type: application/json' \\
    -d '{{"model": "default", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl -sN http://127.0.0.1:8080/v1/chat/completions \\
    -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Content-Type: application/json' \\
    -d '{{"model": "default", "stream": true, "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl -s http://127.0.0.1:8080/statsz

Ctrl-C stops both.
""", flush=True)
            gateway.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (gateway, mock):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
