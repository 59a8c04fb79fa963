"""routes.yaml compiled in process: every problem named with file, line and key; good files compile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from handlers.registry import HANDLERS
from tests.support import ROOT

GOOD = """\
version: 1
server:
  listen: 127.0.0.1:${PORT:-9999}
  upstream_connections: ${CONNS:-64}
  max_body: 1MiB
  drain_timeout: 500ms
providers:
  mock:
    url: http://127.0.0.1:1/v1
    api_key: "sk-$${literal}"
agents:
  a: {models: [mock/m1, mock/m2]}
routes:
  - match: POST /v1/chat/completions
    handler: chat
  - match: ANY /proxy/{provider}/{path*}
    handler: passthrough
  - match: GET /healthz
    handler: health
"""


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_file(str(path), env or {}, handlers=HANDLERS.rules)
    return [str(p) for p in caught.value.problems]


def test_good_file_compiles_with_expansion(tmp_path: Path) -> None:
    table = compile_file(str(write(tmp_path, GOOD)), {"PORT": "8123"}, handlers=HANDLERS.rules)
    assert table.server.listen_port == 8123
    assert table.server.upstream_connections == 64  # expanded plain scalar keeps its YAML type
    assert table.server.max_body == 1024 * 1024 and table.server.drain_timeout == 0.5
    assert dict(table.providers["mock"].headers)["Authorization"] == "Bearer sk-${literal}"
    assert [t.label for t in table.agents["a"].targets] == ["mock/m1", "mock/m2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nroutes: [\n", ":3:1: (top level): YAML syntax"),
        ("version: 1\nversion: 1\nroutes: []\n", ":2:1: version: duplicate key 'version'"),
        ("version: 2\nroutes: [{match: GET /x, handler: health}]\n", ":1:1: version:"),
        ("version: 1\nroutes: [{match: GET /x, handler: nope}]\n", "routes[0].handler: 'nope' is not one of"),
        (
            "version: 1\nroutes: [{match: FETCH /x, handler: health}]\n",
            "routes[0].match: 'FETCH /x' is not in",
        ),
        (
            "version: 1\nserver: {max_body: lots}\nroutes: [{match: GET /x, handler: health}]\n",
            "server.max_body: 'lots' is not a size",
        ),
        (
            "version: 1\nroutes:\n  - {match: GET /x, handler: health}\n"
            "  - {match: GET|POST /x, handler: health}\n",
            ":4:6: routes[1].match: collides with routes[0]",
        ),
        (
            "version: 1\nroutes:\n  - {match: 'ANY /p/{a}', handler: health}\n  - {match: 'GET /p/{b}', handler: health}\n",
            "routes[1].match: collides with routes[0]",
        ),
        (
            "version: 1\nroutes: [{match: 'ANY /proxy/{provider}', handler: passthrough}]\n",
            "needs {provider} and {path*}",
        ),
        ("version: 1\nroutes: [{match: 'GET /a/{x*}/b', handler: health}]\n", "must be the last part"),
        (
            "version: 1\nroutes: [{match: GET /x, handler: health, converters: [sse-frame]}]\n",
            "the health handler takes no converters",
        ),
        (
            "version: 1\nproviders: {p: {url: 'http://h/v1'}}\n"
            "routes: [{match: POST /c, handler: chat, converters: [shout]}]\n",
            "routes[0].converters: unknown converter 'shout'",
        ),
        (
            "version: 1\nproviders: {p: {url: 'http://h/v1'}}\nagents: {p: {models: [p/x]}}\n"
            "routes: [{match: POST /c, handler: chat}]\n",
            "agent 'p' has the name of a provider",
        ),
        (
            "version: 1\nproviders: {p: {url: 'ftp://h'}}\nroutes: [{match: GET /x, handler: health}]\n",
            "providers.p.url: 'ftp://h' is not in the expected form",
        ),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path)) for p in found)


def test_secrets_errors_never_show_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        "client_token: short-secret\napi_keys: {bot: {token: x-secret-value, roles: [god]}}\n",
        "secrets.yaml",
    )
    routes = write(
        tmp_path, "version: 1\nsecrets: secrets.yaml\nroutes: [{match: GET /x, handler: health}]\n"
    )
    found = problems(routes)
    assert any("secrets.yaml:1:1: client_token" in p for p in found), found
    assert any("api_keys.bot.roles[0]" in p for p in found), found
    assert not any("short-secret" in p or "x-secret-value" in p for p in found), found


def test_declared_secrets_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    routes = write(
        tmp_path, "version: 1\nsecrets: nowhere.yaml\nroutes: [{match: GET /x, handler: health}]\n"
    )
    found = problems(routes)
    assert any(p.startswith(f"{routes}:2:1: secrets: secrets file") and "not found" in p for p in found), found


def test_no_secrets_file_declared_is_the_documented_401_mode(tmp_path: Path) -> None:
    table = compile_file(str(write(tmp_path, "version: 1\nroutes: [{match: GET /x, handler: health}]\n")), {}, handlers=HANDLERS.rules)
    assert any("authenticated routes will answer 401" in str(w) for w in table.warnings)
    assert len(table.keys) == 0


@pytest.mark.parametrize(
    "expires",
    ["2020-13-01T00:00:00Z", "2030-02-30T00:00:00Z", "2030-01-01T00:00:00", "2030-01-01", "tomorrow", "2030-01-01T25:00:00Z"],
)
def test_impossible_or_offsetless_expiry_is_reported_with_file_line_and_key(tmp_path: Path, expires: str) -> None:
    write(tmp_path, f"api_keys:\n  bot:\n    token: tok-abcdefghijklmnop\n    expires_at: '{expires}'\n", "secrets.yaml")
    routes = write(tmp_path, "version: 1\nsecrets: secrets.yaml\nroutes: [{match: GET /x, handler: health}]\n")
    found = problems(routes)
    assert found == [f"{tmp_path / 'secrets.yaml'}:4:5: api_keys.bot.expires_at: value is not a valid date-time"]


def test_valid_expiry_with_any_offset_compiles(tmp_path: Path) -> None:
    write(tmp_path, "api_keys:\n  bot: {token: tok-abcdefghijklmnop, expires_at: 2030-01-01t10:00:00.5+02:00}\n",
          "secrets.yaml")
    routes = write(tmp_path, "version: 1\nsecrets: secrets.yaml\nroutes: [{match: GET /x, handler: health}]\n")
    table = compile_file(str(routes), {}, handlers=HANDLERS.rules)
    principal, refusal = table.keys.authenticate("tok-abcdefghijklmnop")
    assert principal is not None and refusal is None
    assert principal.expires_at is not None and principal.expires_at.utcoffset() is not None


def test_empty_key_skips_provider_and_drops_targets(tmp_path: Path) -> None:
    routes = write(
        tmp_path,
        """\
version: 1
providers:
  gone: {url: 'http://h/v1', api_key: '${NO_SUCH_KEY:-}'}
  here: {url: 'http://h/v1'}
agents:
  a: {models: [gone/x, here/y]}
routes: [{match: POST /c, handler: chat}]
""",
    )
    table = compile_file(str(routes), {}, handlers=HANDLERS.rules)
    assert list(table.providers) == ["here"]
    assert [t.label for t in table.agents["a"].targets] == ["here/y"]
    assert any("gone/x dropped" in str(w) for w in table.warnings)


def test_reference_page_matches_the_schema() -> None:
    from dsl.reference import render

    assert (ROOT / "docs" / "reference.md").read_text() == render(), (
        "run: python -m dsl.reference > docs/reference.md"
    )


def test_agent_strategy_and_weights_compile(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  a: {models: [mock/m1, mock/m2]}",
        "  a: {models: [mock/m1, mock/m2]}\n  w: {strategy: weighted, models: [{target: mock/m1, weight: 3}, mock/m2]}",
    )
    table = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules)
    assert table.agents["a"].strategy == "fallback" and table.agents["a"].weights == (1, 1)
    weighted = table.agents["w"]
    assert weighted.strategy == "weighted" and weighted.weights == (3, 1)
    assert [t.label for t in weighted.targets] == ["mock/m1", "mock/m2"]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("{strategy: random, models: [mock/m1]}", "agents.w.strategy: 'random' is not one of"),
        ("{strategy: weighted, models: [{target: mock/m1, weight: 0}]}", "agents.w.models[0]"),
        ("{models: [{model: mock/m1}]}", "agents.w.models[0]"),
    ],
)
def test_invalid_agent_strategy_or_weight(tmp_path: Path, agent: str, expected: str) -> None:
    text = GOOD.replace("  a: {models: [mock/m1, mock/m2]}", f"  w: {agent}")
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found


def test_retry_policy_defaults_and_overrides_compile(tmp_path: Path) -> None:
    text = GOOD.replace(
        "agents:\n  a: {models: [mock/m1, mock/m2]}",
        "retry: {attempts: 2, backoff: {base: 5ms}, deadline: 10s}\nagents:\n  a: {models: [mock/m1, mock/m2]}\n"
        "  r: {models: [mock/m1], retry: {attempts: 4, when: [timeout, 429], backoff: {cap: 20ms}}}",
    ).replace(
        "  - match: GET /healthz\n",
        "  - {match: POST /v1/embeddings, handler: forward, providers: [mock], retry: {deadline: 250ms}}\n"
        "  - match: GET /healthz\n",
    )
    table = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules)
    assert (table.retry.attempts, table.retry.base, table.retry.cap, table.retry.deadline) == (2, 0.005, 1.0, 10.0)
    assert table.agents["a"].retry == table.retry
    own = table.agents["r"].retry
    assert (own.attempts, own.base, own.cap, own.deadline) == (4, 0.005, 0.02, 10.0)
    assert own.when == frozenset({"timeout", "429"})
    forward = next(route for route in table.routes if route.handler == "forward")
    assert (forward.retry.attempts, forward.retry.deadline) == (2, 0.25)


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ("{attempts: 0}", "retry.attempts"),
        ("{when: [teapot]}", "retry.when[0]"),
        ("{when: [200]}", "retry.when[0]"),
        ("{deadline: soon}", "retry.deadline"),
    ],
)
def test_invalid_retry_policy(tmp_path: Path, retry: str, expected: str) -> None:
    text = GOOD.replace("agents:\n", f"retry: {retry}\nagents:\n")
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found


def test_retry_on_a_route_that_does_not_forward_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    handler: health\n", "    handler: health\n    retry: {attempts: 2}\n")
    found = problems(write(tmp_path, text))
    assert any("retry" in p for p in found), found


def test_provider_breakers_override_the_top_level_key_by_key(tmp_path: Path) -> None:
    text = GOOD.replace(
        "agents:\n",
        "breakers: {failures: 3, cooldown: 2s}\nagents:\n",
    ).replace(
        "    api_key: \"sk-$${literal}\"\n",
        "    api_key: \"sk-$${literal}\"\n"
        "  hasty: {url: 'http://127.0.0.1:2/v1', breakers: {failures: 1, window: 250ms}}\n"
        "  exempt: {url: 'http://127.0.0.1:3/v1', breakers: {enabled: false}}\n",
    )
    table = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules)
    assert (table.breakers.failures, table.breakers.cooldown) == (3, 2.0)
    assert table.providers["mock"].breakers == table.breakers
    hasty = table.providers["hasty"].breakers
    assert (hasty.failures, hasty.window, hasty.cooldown, hasty.enabled) == (1, 0.25, 2.0, True)
    assert table.providers["exempt"].breakers == replace(table.breakers, enabled=False)


def test_provider_timeouts_compile_with_an_idle_timeout_apart_from_the_whole(tmp_path: Path) -> None:
    """`timeout` bounds the whole transfer (1h by default), `idle_timeout` the upstream's silence
    (600s; 0s: none); an idle timeout no shorter than the whole is left to the whole."""
    from upstream.request import provider_request

    text = GOOD.replace(
        "    api_key: \"sk-$${literal}\"\n",
        "    api_key: \"sk-$${literal}\"\n"
        "  quick: {url: 'http://127.0.0.1:2/v1', idle_timeout: 250ms, timeout: 2m}\n"
        "  patient: {url: 'http://127.0.0.1:3/v1', idle_timeout: 0s}\n"
        "  brief: {url: 'http://127.0.0.1:4/v1', timeout: 30s}\n",
    )
    providers = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules).providers
    timeouts = {name: (p.timeout, p.idle_timeout) for name, p in providers.items()}
    assert timeouts == {"mock": (3600.0, 600.0), "quick": (120.0, 0.25), "patient": (3600.0, None),
                        "brief": (30.0, 600.0)}
    requests = {name: provider_request(p, "http://x/", "GET", None, ()) for name, p in providers.items()}
    assert {name: (r.timeout_ms, r.idle_timeout) for name, r in requests.items()} == {
        "mock": (3_600_000, 600.0), "quick": (120_000, 0.25), "patient": (3_600_000, None), "brief": (30_000, None)}


def test_provider_breakers_under_disabled_top_level_breakers_are_warned_about(tmp_path: Path) -> None:
    text = GOOD.replace("agents:\n", "breakers: {enabled: false}\nagents:\n").replace(
        "    api_key: \"sk-$${literal}\"\n",
        "    api_key: \"sk-$${literal}\"\n    breakers: {failures: 1}\n",
    )
    table = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules)
    assert not table.providers["mock"].breakers.enabled
    assert any("providers.mock.breakers: breakers are disabled at the top level" in str(w) for w in table.warnings)


@pytest.mark.parametrize(
    ("breakers", "expected"),
    [
        ("{failures: 0}", "providers.mock.breakers.failures: 0 is less than the minimum of 1"),
        ("{cooldown: soon}", "providers.mock.breakers.cooldown: 'soon' is not a duration"),
        ("{failure_ratio: 2}", "providers.mock.breakers.failure_ratio"),
        ("{trip_after: 3}", "providers.mock.breakers.trip_after"),
        ("{enabled: maybe}", "providers.mock.breakers.enabled: 'maybe' is not of type boolean"),
    ],
)
def test_invalid_provider_breakers_are_named_with_file_line_and_key(tmp_path: Path, breakers: str, expected: str) -> None:
    text = GOOD.replace("    api_key: \"sk-$${literal}\"\n", f"    api_key: \"sk-$${{literal}}\"\n    breakers: {breakers}\n")
    found = problems(write(tmp_path, text))
    where = f"{tmp_path / 'routes.yaml'}:11:"  # the line of `breakers:` under providers.mock
    assert any(expected in p and p.startswith(where) for p in found), found


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("4", 4), ("auto", None)])
def test_server_workers_compile(tmp_path: Path, value: str, expected: int | None) -> None:
    import os

    text = GOOD.replace("  drain_timeout: 500ms\n", f"  drain_timeout: 500ms\n  workers: {value}\n")
    table = compile_file(str(write(tmp_path, text)), {}, handlers=HANDLERS.rules)
    assert table.server.workers == (expected or min(len(os.sched_getaffinity(0)), 64))
    assert compile_file(str(write(tmp_path, GOOD)), {}, handlers=HANDLERS.rules).server.workers == 1


@pytest.mark.parametrize("value", ["0", "65", "many", "1.5"])
def test_invalid_server_workers(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("  drain_timeout: 500ms\n", f"  drain_timeout: 500ms\n  workers: {value}\n")
    assert any(":7:" in p and "server.workers" in p for p in problems(write(tmp_path, text)))


def test_only_a_table_with_a_least_latency_agent_times_its_tries(tmp_path: Path) -> None:
    """Table.latency_ranked: chat tries are counted in flight and timed only for that strategy to read."""
    table = compile_file(str(write(tmp_path, GOOD)), {}, handlers=HANDLERS.rules)
    assert not table.latency_ranked
    ranked = GOOD.replace("a: {models: [mock/m1, mock/m2]}", "a: {models: [mock/m1, mock/m2], strategy: least-latency}")
    table = compile_file(str(write(tmp_path, ranked)), {}, handlers=HANDLERS.rules)
    assert table.latency_ranked and table.agents["a"].strategy == "least-latency"


def test_an_agent_knows_whether_any_target_has_a_known_limit(tmp_path: Path) -> None:
    """Agent.limits_known: the overflow guard runs only when some target's window is known."""
    assert not compile_file(str(write(tmp_path, GOOD)), {}, handlers=HANDLERS.rules).agents["a"].limits_known
    sized = GOOD.replace("a: {models: [mock/m1, mock/m2]}",
                         "a: {models: [mock/m1, {target: mock/m2, context_window: 1000}]}")
    assert compile_file(str(write(tmp_path, sized)), {}, handlers=HANDLERS.rules).agents["a"].limits_known
    registry = GOOD.replace("agents:", "models:\n  m1: {context_window: 1000}\nagents:")
    assert compile_file(str(write(tmp_path, registry)), {}, handlers=HANDLERS.rules).agents["a"].limits_known
