"""`gateway.py check` and `gateway.py routes` run as commands: exit codes and what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.unit.test_dsl import GOOD, write


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "gateway.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **(env or {})},
        timeout=30,
    )



def test_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        """\
version: 1
providers:
  mock:
    url: http://127.0.0.1:1/v1
    timout: 5s
  other:
    url: http://127.0.0.1:1/v1
    format: 42
agents:
  a: {models: [ghost/m1]}
routes:
  - match: POST /v1/chat/completions
    handler: chat
    ingress: ${UNSET_FOR_TEST}
""",
    )
    result = run_cli("check", "-c", str(bad))
    assert result.returncode == 1
    err = result.stderr
    assert f"{bad}:5:5: providers.mock.timout: unknown key 'timout' (did you mean 'timeout'?)" in err
    assert f"{bad}:8:5: providers.other.format: 42 is not one of: openai, anthropic" in err
    assert f"{bad}:10:16: agents.a.models[0]: unknown provider 'ghost'" in err
    assert f"{bad}:14:14: routes[0].ingress: environment variable ${{UNSET_FOR_TEST}} is not set" in err
    assert "Traceback" not in err


def test_check_ok_exits_zero(tmp_path: Path) -> None:
    result = run_cli("check", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_shipped_routes_yaml_starts_without_keys(tmp_path: Path) -> None:
    secrets = write(tmp_path, "client_token: a-client-token-of-some-length\n", "secrets.yaml")
    result = run_cli("check", "-c", "routes.yaml", env={"GATEWAY_SECRETS": str(secrets)})
    assert result.returncode == 0, result.stderr
    assert "providers.openai.api_key: key is empty" in result.stderr


def test_shipped_routes_yaml_without_its_secrets_file_names_the_file() -> None:
    result = run_cli("check", "-c", "routes.yaml", env={"GATEWAY_SECRETS": "/nonexistent/secrets.yaml"})
    assert result.returncode == 1
    assert re.search(r"routes.yaml:\d+:1: secrets: secrets file /nonexistent/secrets.yaml not found", result.stderr)


def test_routes_prints_the_compiled_table(tmp_path: Path) -> None:
    result = run_cli("routes", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["METHOD", "PATH", "HANDLER", "AUTH", "CONVERTERS", "UPSTREAM"]
    chat = next(line for line in lines if "/v1/chat/completions" in line)
    assert "sse-frame > openai-usage" in chat and "a > mock/m1|mock/m2" in chat
    proxy = next(line for line in lines if "/proxy/" in line)
    assert "mock=http://127.0.0.1:1/v1" in proxy


def test_check_reports_an_impossible_expiry_without_a_traceback(tmp_path: Path) -> None:
    write(tmp_path, "api_keys:\n  bot: {token: tok-abcdefghijklmnop, expires_at: '2020-13-01T00:00:00Z'}\n", "secrets.yaml")
    routes = write(tmp_path, "version: 1\nsecrets: secrets.yaml\nroutes: [{match: GET /x, handler: health}]\n")
    result = run_cli("check", "-c", str(routes))
    assert result.returncode == 1 and "api_keys.bot.expires_at: value is not a valid date-time" in result.stderr
    assert "Traceback" not in result.stderr and "2020-13-01" not in result.stderr
