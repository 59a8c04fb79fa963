"""Every gateway log written during the suite: no provider key or client token appears in any.

Named to run last (pytest runs files in name order), so that it reads the logs of all
the gateways the other tests started, failures and refusals included.
"""

from __future__ import annotations

from tests.support import ALT_KEY, CLIENT_TOKEN, LOG_DIR, PROVIDER_KEY


def test_logs_hold_no_secrets() -> None:
    from tests.test_access import TOKENS

    secrets = [PROVIDER_KEY, ALT_KEY, CLIENT_TOKEN, *TOKENS.values()]
    logs = sorted(LOG_DIR.glob("*.log"))
    assert logs, "the suite's gateways write their logs here"
    access_lines = 0
    for log in logs:
        text = log.read_text(errors="replace")
        access_lines += text.count('{"ts":')
        for secret in secrets:
            assert secret not in text, f"a secret appears in {log.name}"
    assert access_lines > 100, "the access log was on, so there was something to leak"
