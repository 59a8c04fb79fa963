"""systemd integration pieces: ops/sdnotify.py and systemd/gateway.service.

The notify tests bind a real AF_UNIX datagram socket standing in for PID 1's
notify socket. The unit test runs `systemd-analyze verify`, which works offline
(no running systemd needed) and is skipped where the tool is missing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import sdnotify
from tests.support import ROOT

UNIT = ROOT / "systemd" / "gateway.service"
SYSUSERS = ROOT / "systemd" / "llm-gateway.sysusers.conf"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="AF_UNIX abstract")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    yield
    # Don't leak the cached socket into other tests.
    if sdnotify._cached is not None:
        sdnotify._cached[2].close()
        sdnotify._cached = None


class Receiver:
    """Stands in for systemd's notify socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(2.0)

    def recv(self) -> list[str]:
        return self.sock.recv(4096).decode("utf-8").split("\n")

    def assert_empty(self) -> None:
        self.sock.settimeout(0.05)
        with pytest.raises(TimeoutError):
            self.sock.recv(4096)
        self.sock.settimeout(2.0)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # Short path: sun_path is limited to 108 bytes and pytest's tmp_path can exceed it.
    with tempfile.TemporaryDirectory(prefix="sdn-") as d:
        yield Path(d)


@pytest.fixture
def receiver(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    path = sockdir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        yield Receiver(sock)
    finally:
        sock.close()


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# --- notify() -------------------------------------------------------------------


def test_notify_sends_one_datagram(receiver: Receiver) -> None:
    assert sdnotify.notify("A=1", "B=2") is True
    assert receiver.recv() == ["A=1", "B=2"]
    receiver.assert_empty()


def test_ready(receiver: Receiver) -> None:
    assert sdnotify.ready() is True
    msg = receiver.recv()
    assert msg[0] == "READY=1"
    assert any(f.startswith("STATUS=") for f in msg)


def test_ready_custom_and_no_status(receiver: Receiver) -> None:
    assert sdnotify.ready("Listening on :8080")
    assert receiver.recv() == ["READY=1", "STATUS=Listening on :8080"]
    assert sdnotify.ready(None)
    assert receiver.recv() == ["READY=1"]


def test_reloading_carries_monotonic_usec(receiver: Receiver) -> None:
    before = _monotonic_usec()
    assert sdnotify.reloading() is True
    after = _monotonic_usec()
    fields = dict(f.split("=", 1) for f in receiver.recv())
    assert fields["RELOADING"] == "1"
    assert re.fullmatch(r"\d+", fields["MONOTONIC_USEC"])
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    receiver.assert_empty()  # same datagram, not two


def test_stopping(receiver: Receiver) -> None:
    assert sdnotify.stopping() is True
    assert receiver.recv()[0] == "STOPPING=1"


def test_status_is_single_line(receiver: Receiver) -> None:
    assert sdnotify.status("reloading\nroutes.yaml") is True
    assert receiver.recv() == ["STATUS=reloading routes.yaml"]


def test_watchdog_ping(receiver: Receiver) -> None:
    assert sdnotify.watchdog_ping() is True
    assert receiver.recv() == ["WATCHDOG=1"]


@linux_only
def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"llm-gateway-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready(None) is True
        assert sock.recv(4096) == b"READY=1"


def test_unset_socket_is_noop() -> None:
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False
    assert sdnotify.watchdog_ping() is False
    assert sdnotify._cached is None  # nothing opened


def test_empty_socket_value_is_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert sdnotify.ready() is False


def test_unsupported_scheme_is_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.ready() is False


def test_missing_socket_path_returns_false(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(sockdir / "does-not-exist.sock"))
    with caplog.at_level(logging.DEBUG, logger=sdnotify.__name__):
        assert sdnotify.ready() is False
        assert sdnotify.watchdog_ping() is False
    assert any("failed" in r.getMessage() for r in caplog.records)


def test_stale_socket_returns_false(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A socket file whose receiver is gone (ECONNREFUSED), as after a manager crash.
    path = sockdir / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert sdnotify.ready() is False


def test_socket_cached_and_reopened_on_change(
    receiver: Receiver, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sdnotify.watchdog_ping()
    first = sdnotify._cached
    assert first is not None
    assert sdnotify.watchdog_ping()
    assert sdnotify._cached is first
    receiver.recv()
    receiver.recv()

    other_path = sockdir / "other.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as other:
        other.bind(str(other_path))
        other.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(other_path))
        assert sdnotify.watchdog_ping()
        assert other.recv(4096) == b"WATCHDOG=1"
    second = sdnotify._cached
    assert second is not None and second[2] is not first[2]
    assert first[2].fileno() == -1  # old one closed
    receiver.assert_empty()


def test_socket_reopened_after_fork(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sdnotify.watchdog_ping()
    first = sdnotify._cached
    assert first is not None
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # pretend we are a child
    assert sdnotify.watchdog_ping()
    assert sdnotify._cached is not None and sdnotify._cached[2] is not first[2]
    assert receiver.recv() == ["WATCHDOG=1"]
    assert receiver.recv() == ["WATCHDOG=1"]


def test_real_fork_child_uses_own_socket(receiver: Receiver) -> None:
    assert sdnotify.ready(None)
    assert receiver.recv() == ["READY=1"]
    parent_sock = sdnotify._cached
    pid = os.fork()
    if pid == 0:  # child: must send via a fresh socket; never return into pytest
        ok = sdnotify.status("child") and sdnotify._cached is not parent_sock
        os._exit(0 if ok else 1)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0
    assert receiver.recv() == ["STATUS=child"]
    # Parent's cached socket still works after the child closed its copy.
    assert sdnotify._cached is parent_sock
    assert sdnotify.watchdog_ping()
    assert receiver.recv() == ["WATCHDOG=1"]


# --- watchdog_interval() -----------------------------------------------------------


def test_watchdog_interval_unset() -> None:
    assert sdnotify.watchdog_interval() is None


def test_watchdog_interval_without_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval() == 30.0


def test_watchdog_interval_matching_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1500000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 1.5


def test_watchdog_interval_other_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None


@pytest.mark.parametrize("value", ["0", "-5", "abc", "", "1.5"])
def test_watchdog_interval_invalid(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", value)
    assert sdnotify.watchdog_interval() is None


def test_watchdog_interval_invalid_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "notapid")
    assert sdnotify.watchdog_interval() is None


# --- systemd/gateway.service ---------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEMD_SYSUSERS = shutil.which("systemd-sysusers")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")

UNIT_NAME = "llm-gateway.service"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _portable_copy(tmp_path: Path, extra: str = "") -> Path:
    """Copy the unit with ExecStart/ExecReload pointing at files that exist here,
    so verify's "Command ... is not executable" check doesn't mask real problems."""
    gateway_py = tmp_path / "gateway.py"
    gateway_py.write_text("")
    text = UNIT.read_text()
    text = text.replace("/opt/llm-gateway/.venv/bin/python", sys.executable)
    text = text.replace("/opt/llm-gateway/gateway.py", str(gateway_py))
    kill = shutil.which("kill") or "/bin/kill"
    if not os.path.exists("/bin/kill"):
        text = text.replace("/bin/kill", kill)
    if extra:
        text = text.replace("[Service]\n", "[Service]\n" + extra, 1)
    unit = tmp_path / UNIT_NAME  # verify requires a valid unit file name
    unit.write_text(text)
    return unit


def _verify(unit: Path) -> list[str]:
    """Run `systemd-analyze verify` and return output lines about this unit.

    Offline mode (no running systemd needed). --man=no skips man-page lookups
    for Documentation=; other units (pulled in via After=/Wants=, generators)
    can print unrelated noise on real hosts, so keep only lines naming our unit.
    """
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "cat"},
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if UNIT_NAME in ln]


@needs_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    problems = _verify(_portable_copy(tmp_path))
    assert problems == []


@needs_analyze
def test_unit_verify_catches_bad_directives(tmp_path: Path) -> None:
    # Guards the filter above: a broken unit must produce lines we recognise.
    problems = _verify(_portable_copy(tmp_path, extra="BogusDirective=1\nRestart=sometimes\n"))
    assert any("BogusDirective" in p for p in problems), problems
    assert any("sometimes" in p for p in problems), problems


@needs_analyze
def test_unit_as_shipped_only_lacks_the_venv(tmp_path: Path) -> None:
    unit = tmp_path / UNIT_NAME
    unit.write_text(UNIT.read_text())
    for line in _verify(unit):
        assert "/opt/llm-gateway/" in line, line


def test_unit_required_settings() -> None:
    d = _directives(UNIT.read_text())

    def one(key: str) -> str:
        assert key in d, key
        assert len(d[key]) == 1, (key, d[key])
        return d[key][0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStart") == (
        "/opt/llm-gateway/.venv/bin/python /opt/llm-gateway/gateway.py serve "
        "-c /etc/llm-gateway/routes.yaml"
    )
    assert one("WorkingDirectory") == "/opt/llm-gateway"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("KillSignal") == "SIGTERM"
    assert int(one("TimeoutStopSec")) > 30  # longer than the gateway's drain
    assert one("Restart") == "on-failure"
    assert "RestartSec" in d and "StartLimitBurst" in d and "StartLimitIntervalSec" in d
    assert one("WatchdogSec") == "30"
    assert one("EnvironmentFile") == "-/etc/llm-gateway/env"
    assert "GATEWAY_SECRETS=/etc/llm-gateway/secrets.yaml" in d["Environment"]
    assert "DynamicUser" not in d  # a transient UID could not share the secrets file's group
    assert one("User") == one("Group") == "llm-gateway"
    assert one("RuntimeDirectory") == "llm-gateway"  # $RUNTIME_DIRECTORY: the workers' files
    assert one("ProtectSystem") == "strict"
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    assert one("RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    assert one("SystemCallFilter") == "@system-service"
    assert one("MemoryDenyWriteExecute") == "yes"
    assert one("UMask") == "0077"
    assert one("LimitNOFILE") == "65536"
    assert one("ConfigurationDirectory") == "llm-gateway"
    assert one("WantedBy") == "multi-user.target"
    for key in (
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "NoNewPrivileges",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "LockPersonality",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RemoveIPC",
    ):
        assert one(key) == "yes", key


# --- systemd/llm-gateway.sysusers.conf ------------------------------------------------


def test_sysusers_declares_the_units_user() -> None:
    entries = [line.split() for line in SYSUSERS.read_text().splitlines() if line and not line.startswith("#")]
    assert [(kind, name) for kind, name, *_ in entries] == [("u", "llm-gateway")]
    assert _directives(UNIT.read_text())["User"] == ["llm-gateway"]


@pytest.mark.skipif(SYSTEMD_SYSUSERS is None, reason="systemd-sysusers not installed")
def test_sysusers_creates_a_system_user_without_login(tmp_path: Path) -> None:
    """Applied to an empty root (--root: nothing on this machine changes)."""
    assert SYSTEMD_SYSUSERS is not None
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        (tmp_path / "etc" / name).touch()
    subprocess.run([SYSTEMD_SYSUSERS, f"--root={tmp_path}", str(SYSUSERS)], check=True, capture_output=True,
                   timeout=60)
    user = (tmp_path / "etc" / "passwd").read_text().strip().split(":")
    group = (tmp_path / "etc" / "group").read_text().strip().split(":")
    assert user[0] == group[0] == "llm-gateway"
    assert user[3] == group[2]  # its own group
    assert int(user[2]) < 1000  # a system user
    assert user[6].endswith("nologin")
