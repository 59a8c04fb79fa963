"""A real gateway counting in a real Redis (with a password, which no log line or page shows):
/statsz and /metrics show the state, an outage and the recovery; a reload that keeps `state:`
keeps its backend."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.support import CLIENT_TOKEN, Gateway, RedisServer, write_config

ROUTES = """
version: 1
server: {{listen: "127.0.0.1:${{GATEWAY_PORT}}"}}
secrets: secrets.yaml
state: {{url: "{url}", timeout: 2s, on_state_error: allow}}
providers: {{mock: {{url: "http://127.0.0.1:1/v1"}}}}
models: {{m: {{price: {{input: 1, output: 1}}}}}}
agents: {{a: {{models: [mock/m]}}}}
limits: {{keys: {{rpm: 100}}}}
routes:
  - {{match: GET /healthz, handler: health}}
  - {{match: GET /metrics, handler: metrics}}
  - {{match: GET /statsz, handler: statsz}}
"""
SECRETS = f"""client_token: {CLIENT_TOKEN}
api_keys:
  team:
    token: a-team-token-of-some-length
    budget: {{usd: 2.5, per: month}}
"""


def limits_of(gateway: Gateway) -> dict:
    status, _, body = gateway.get("/statsz")
    assert status == 200
    return json.loads(body)["limits"]


def until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_statsz_and_metrics_through_an_outage_and_a_reload(tmp_path: Path) -> None:
    redis = RedisServer(password="redis-password-5e1f")
    gateway = Gateway(write_config(tmp_path, ROUTES.format(url=redis.url), SECRETS))
    try:
        limits = limits_of(gateway)
        assert limits == {"state": f"redis://127.0.0.1:{redis.port}/0", "state_reachable": True,
                          "budgets": {"team": {"usd": 0.0, "budget": 2.5, "per": "month"}}}
        metrics = gateway.metrics()
        for name in ("gateway_ratelimit_decisions_total", "gateway_state_errors_total", "gateway_spend_usd_total"):
            assert f"# TYPE {name} counter" in metrics

        redis.stop()
        assert limits_of(gateway)["budgets"]["team"]["usd"] is None
        assert limits_of(gateway)["state_reachable"] is False
        assert 'gateway_state_errors_total{operation="spent"}' in gateway.metrics()
        redis.start()
        until(lambda: limits_of(gateway)["state_reachable"])

        gateway.signal(signal.SIGHUP)  # the same state: the same backend, no new outage or recovery
        until(lambda: "configuration reloaded" in gateway.log())
        assert limits_of(gateway)["state_reachable"]
    finally:
        gateway.stop()
        redis.stop()
    log = gateway.log()
    assert log.count("unreachable") == 1 and log.count("answers again") == 1, log
    assert "Traceback" not in log and "redis-password-5e1f" not in log
