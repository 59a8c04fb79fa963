"""One mock provider process per test module, checked for tracebacks when it stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mock_provider.tests.helpers import Mock


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    m = Mock()
    yield m
    out, err = m.stop()
    assert out == "", out  # exactly one stdout line, nothing per request
    assert "Traceback" not in err and "Exception" not in err, err
