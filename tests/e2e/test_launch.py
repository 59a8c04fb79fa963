"""`make run` (server/launch.py): demo mode on a bare machine, plain `serve` otherwise."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import ROOT, free_port


class Launch:
    """`python -m server.launch -c routes.yaml` (the shipped file) on ports of the test's own."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port, self.local_port = free_port(), free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.launch", "-c", "routes.yaml"],
            cwd=ROOT,
            env={**clean, "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
                 "LOCAL_LLM_URL": f"http://127.0.0.1:{self.local_port}/v1",
                 "GATEWAY_SECRETS": str(tmp_path / "secrets.yaml"), **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.output = ""

    def read_until(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Unbuffered reads: a buffered readline would hide lines that already arrived from select."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            found = re.search(pattern, self.output)
            if found:
                return found
            ready, _, _ = select.select([fd], [], [], timeout)
            data = os.read(fd, 65536) if ready else b""
            assert data, f"no {pattern!r} in:\n{self.output}"
            self.output += data.decode(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rest, _ = self.proc.communicate(timeout=30)
        self.output += rest.decode(errors="replace")
        return self.proc.returncode


@pytest.fixture
def launched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    launch = Launch(tmp_path, **getattr(request, "param", {}))
    yield launch
    launch.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_bare_machine_gets_demo_mode_with_a_one_time_token(launched: Launch) -> None:
    launched.read_until(r"To leave demo mode[^=]*={78}")
    token = re.search(r"One-time admin token.*\n\n\s+(\S+)\n", launched.output).group(1)
    assert "DEMO MODE" in launched.output
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{launched.port}/v1", api_key=token, max_retries=0)
    answer = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content.startswith("Hello from mock")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="guess", max_retries=0).models.list()
    assert launched.stop() == 0
    assert launched.output.count(token) == 2  # the banner's token and its curl line, nothing else
    assert not _listening(launched.local_port), "the mock outlived the gateway"


def test_a_secrets_file_means_plain_serve_and_no_mock(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("client_token: an-operator-chosen-token\n")
    launch = Launch(tmp_path)
    try:
        launch.read_until(r"listening on 127\.0\.0\.1")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{launch.port}/v1",
                               api_key="an-operator-chosen-token", max_retries=0)
        with pytest.raises(openai.APIStatusError):  # nothing listens where `local` points
            client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}])
        assert not _listening(launch.local_port)
    finally:
        assert launch.stop() == 0
    assert "DEMO MODE" not in launch.output


def test_a_provider_key_without_secrets_file_is_a_clear_error(tmp_path: Path) -> None:
    launch = Launch(tmp_path, OPENAI_API_KEY="sk-an-operator-key")
    assert launch.proc.wait(30) == 1
    launch.stop()
    assert "secrets: secrets file" in launch.output and "not found" in launch.output
    assert "DEMO MODE" not in launch.output and "sk-an-operator-key" not in launch.output
    assert not _listening(launch.local_port)
