"""routes.yaml `state:` and `limits:`, and the secrets file's per-key `limits:` and `budget:`, compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.table import Budget, Rates, StateSettings
from handlers.registry import HANDLERS

ROUTES = """\
version: 1
secrets: secrets.yaml
providers:
  mock: {{url: "http://127.0.0.1:1/v1"}}
models:
  priced: {{price: {{input: 1.0, output: 2.0, cached_input: 0.5}}}}
agents:
  a: {{models: [mock/priced, mock/free]}}
  b: {{models: [mock/priced]}}
{extra}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
"""
SECRETS = """\
client_token: a-client-token-of-some-length
api_keys:
  team:
    token: a-team-token-of-some-length
{extra}
"""


def compiled(tmp_path: Path, extra: str = "", secrets: str = ""):
    (tmp_path / "secrets.yaml").write_text(SECRETS.format(extra=secrets))
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(extra=extra))
    return compile_file(str(path), {}, handlers=HANDLERS.rules)


def problems(tmp_path: Path, extra: str = "", secrets: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compiled(tmp_path, extra, secrets)
    return [str(p) for p in caught.value.problems]


def test_defaults_memory_state_and_no_limits(tmp_path: Path) -> None:
    table = compiled(tmp_path)
    assert table.state == StateSettings("memory", 0.25, "allow")
    assert table.limits.for_key("team") == Rates() and not table.limits.budgets


def test_state_url_alone_or_with_settings(tmp_path: Path) -> None:
    assert compiled(tmp_path, "state: redis://127.0.0.1:6379/2").state.url == "redis://127.0.0.1:6379/2"
    state = compiled(tmp_path, "state: {url: 'rediss://r:6380/0', timeout: 20ms, on_state_error: deny}").state
    assert state == StateSettings("rediss://r:6380/0", 0.02, "deny", 0.25)
    assert compiled(tmp_path, "state: {url: memory, breaker_sync: 50ms}").state.breaker_sync == 0.05
    assert compiled(tmp_path, "state: {url: memory, breaker_sync: 0}").state.breaker_sync == 0.0


def test_limits_compile_and_a_keys_own_override_the_default_one_by_one(tmp_path: Path) -> None:
    table = compiled(
        tmp_path,
        "limits:\n  keys: {rpm: 60, tpm: 1000}\n  agents: {a: {concurrent: 3}}\n"
        "  providers: {mock: {rpm: 500}}\n  targets: {mock/priced: {tpm: 9000}}\n  output_reserve: 256\n"
        "  concurrent_lease: 2m\n",
        "    limits: {rpm: 5}\n    budget: {usd: 0.01, per: day}",
    )
    limits = table.limits
    assert limits.for_key("team") == Rates(rpm=5, tpm=1000)
    assert limits.for_key("admin") == Rates(rpm=60, tpm=1000)
    assert limits.agents["a"] == Rates(concurrent=3) and limits.providers["mock"] == Rates(rpm=500)
    assert limits.targets["mock/priced"] == Rates(tpm=9000)
    assert limits.output_reserve == 256 and limits.concurrent_lease == 120.0
    assert limits.budgets["team"] == Budget(0.01, "day")


@pytest.mark.parametrize(
    ("extra", "secrets", "expected"),
    [
        ("state: mysql://x", "", "routes.yaml:10:1: state: 'mysql://x' is not memory, redis://"),
        ("state: {url: memory, on_state_error: maybe}", "", "state"),
        ("limits: {providers: {nope: {rpm: 1}}}", "", "routes.yaml:10:22: limits.providers.nope: unknown provider 'nope'"),
        ("limits: {targets: {nope/m: {rpm: 1}}}", "", "limits.targets.nope/m: unknown provider 'nope'"),
        ("limits: {agents: {zz: {rpm: 1}}}", "", "limits.agents.zz: unknown agent 'zz'"),
        ("limits: {keys: {rpm: 0}}", "", "limits.keys.rpm"),
        ("limits: {keys: {rps: 3}}", "", "unknown key 'rps' (did you mean 'rpm'?)"),
        ("", "    budget: {usd: 5}", "secrets.yaml:5:5: api_keys.team.budget: 'per' is required"),
        ("", "    limits: {tpm: -1}", "secrets.yaml:5:14: api_keys.team.limits.tpm"),
    ],
)
def test_invalid_limits_name_file_line_and_key(tmp_path: Path, extra: str, secrets: str, expected: str) -> None:
    found = problems(tmp_path, extra, secrets)
    assert any(expected in problem for problem in found), found


def test_budget_on_a_key_whose_models_have_no_price_is_a_warning(tmp_path: Path) -> None:
    table = compiled(tmp_path, secrets="    budget: {usd: 1, per: month}")
    warnings = [str(w) for w in table.warnings]
    assert any("secrets.yaml" in w and "api_keys.team.budget" in w and "free" in w for w in warnings), warnings
    priced_only = compiled(tmp_path, secrets="    allowed_agents: [b]\n    budget: {usd: 1, per: month}")
    assert not [w for w in priced_only.warnings if "budget" in str(w)]
