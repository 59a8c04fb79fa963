"""The processes a bench script measures, on free loopback ports: the mock provider, and a
gateway from this or another checkout (to compare versions), with its memory as /proc says.

Bench scripts run without pytest, so this stands apart from tests/support.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_mib(pids: Iterable[int], field: str = "VmRSS") -> float:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM: peak) summed over `pids`, in MiB;
    a process gone meanwhile counts nothing."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
    return total / 1024


def rss_mib(pid: int) -> float:
    return status_mib([pid])


def start_mock() -> tuple[subprocess.Popen, str]:
    """The mock provider of this checkout, without its request log; the process and its URL."""
    mock = subprocess.Popen([sys.executable, "-m", "mock_provider", "--port", "0", "--no-log"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert mock.stdout is not None
    found = re.search(r":(\d+)$", mock.stdout.readline().strip())
    if not found:
        stop(mock)
        raise RuntimeError("mock provider did not start")
    return mock, f"http://127.0.0.1:{found.group(1)}"


def start_gateway(
    root: Path, routes: str, secrets: str, workdir: Path, log: Path | None = None, core: int | None = None,
    port: int | None = None,
) -> tuple[subprocess.Popen, int]:
    """`root/gateway.py serve` with these routes.yaml and secrets.yaml (written into `workdir`),
    listening on ``${GATEWAY_PORT}``: `port`, or a free port; pinned to `core` if given; returns
    once /healthz answers OK.

    It runs on `root`'s own interpreter (`.venv/bin/python`, if it has one), so that another
    checkout runs with its own dependencies. Its output goes to `log`, or nowhere. No .pyc is
    written into `root`.
    """
    port = port or free_port()
    own = root / ".venv" / "bin" / "python"
    python = str(own) if own.exists() else sys.executable
    (workdir / "secrets.yaml").write_text(secrets)
    (workdir / "routes.yaml").write_text(routes)
    env = {**os.environ, "GATEWAY_PORT": str(port), "PYTHONDONTWRITEBYTECODE": "1"}
    with open(log or os.devnull, "wb") as output:
        pinned = [] if core is None else ["taskset", "-c", str(core)]
        gateway = subprocess.Popen([*pinned, python, str(root / "gateway.py"), "serve", "-c",
                                    str(workdir / "routes.yaml")],
                                   cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and gateway.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.read() == b"OK":
                    return gateway, port
        except OSError:
            time.sleep(0.05)
    stop(gateway)
    raise RuntimeError(f"gateway did not start (exit {gateway.returncode})")


def stop(*processes: subprocess.Popen | None) -> None:
    """Terminate each process (None: not started) and wait for it."""
    for process in processes:
        if process is not None:
            process.terminate()
            process.wait(10)
