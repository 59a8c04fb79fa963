"""The whole suite's hooks: the gateways' log folder for the run (fixtures of the end-to-end tests are in e2e/)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.support import log_dir


def pytest_configure(config: pytest.Config) -> None:
    """One log folder for the run, named before xdist starts its workers so they share it."""
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("GATEWAY_TEST_LOGS", tempfile.mkdtemp(prefix="gateway-test-logs-"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A green run leaves no logs behind (each gateway checked its own for secrets as it stopped)."""
    if not hasattr(session.config, "workerinput") and exitstatus == 0:
        shutil.rmtree(log_dir(), ignore_errors=True)
