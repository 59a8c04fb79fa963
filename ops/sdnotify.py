"""Minimal systemd notify protocol (sd_notify(3)) without libsystemd.

Why not libsystemd / python-systemd: the protocol is one datagram of
newline-separated ``KEY=VALUE`` assignments sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET``; a C dependency (and its headers at install time) buys
nothing here.

Every helper is a no-op returning False when the process was not started by
systemd (``$NOTIFY_SOCKET`` unset), so the gateway can call them unconditionally
in development and tests. Send failures are logged at debug level and reported
as False, never raised: a lost notification must not take the gateway down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

__all__ = [
    "notify",
    "ready",
    "reloading",
    "stopping",
    "status",
    "watchdog_interval",
    "watchdog_ping",
]

log = logging.getLogger(__name__)

# Bounded blocking send: PID 1 drains its notify socket promptly, so a full
# queue is exceptional. A short timeout keeps READY=1 from being dropped on a
# momentary backlog while never stalling the event loop for long.
_SEND_TIMEOUT_S = 1.0

_lock = threading.Lock()
# Cached (pid, NOTIFY_SOCKET value, socket). The pid makes a forked child open
# its own socket instead of sharing the parent's open file description. Module-level,
# not in the Runtime: systemd talks to the OS process named by $NOTIFY_SOCKET.
_cached: tuple[int, str, socket.socket] | None = None


def _address(value: str) -> str | None:
    """Map $NOTIFY_SOCKET to a connectable AF_UNIX address, or None if unsupported.

    '@name' is the Linux abstract namespace (leading NUL byte); '/path' is a
    filesystem socket. Other schemes (e.g. newer systemd's 'vsock:') are not
    handled here and are treated as "no manager".
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _get_socket(value: str) -> socket.socket:
    """Return the per-process cached datagram socket, reopening it when the
    process forked or $NOTIFY_SOCKET changed (tests, re-exec)."""
    global _cached
    pid = os.getpid()
    if _cached is not None:
        cpid, cvalue, sock = _cached
        if cpid == pid and cvalue == value:
            return sock
        # Closing the inherited copy after fork only closes the child's fd; the
        # parent's socket is unaffected.
        sock.close()
        _cached = None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.settimeout(_SEND_TIMEOUT_S)
    _cached = (pid, value, sock)
    return sock


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (each ``KEY=VALUE``) as one datagram to systemd.

    One datagram so that related fields (e.g. RELOADING=1 with MONOTONIC_USEC)
    are processed atomically by the service manager. Returns True if the
    datagram was sent, False if there is no manager or the send failed.
    """
    value = os.environ.get("NOTIFY_SOCKET", "")
    if not value or not assignments:
        return False
    addr = _address(value)
    if addr is None:
        log.debug("sd_notify: unsupported NOTIFY_SOCKET %r", value)
        return False
    payload = "\n".join(assignments).encode("utf-8")
    with _lock:
        try:
            sock = _get_socket(value)
            sock.sendto(payload, addr)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", value, exc)
            return False
    return True


def _status_field(text: str) -> str:
    """STATUS= must stay a single line: a newline would start a new assignment."""
    return "STATUS=" + " ".join(text.splitlines())


def _with_status(fields: list[str], text: str | None) -> bool:
    if text is not None:
        fields.append(_status_field(text))
    return notify(*fields)


def ready(status_text: str | None = "Ready") -> bool:
    """Startup (or a reload) finished: Type=notify units leave 'activating' here.

    Also send this after a reload completes, so systemd leaves 'reloading'.
    """
    return _with_status(["READY=1"], status_text)


def reloading(status_text: str | None = "Reloading configuration") -> bool:
    """A reload started. MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload)
    tie this message to the reload request it issued; older versions ignore it.
    Follow with ready() once the new configuration is live."""
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return _with_status(["RELOADING=1", f"MONOTONIC_USEC={now_usec}"], status_text)


def stopping(status_text: str | None = "Draining connections") -> bool:
    """Shutdown started (draining), so `systemctl status` shows 'deactivating'
    instead of a service that looks healthy but refuses new work."""
    return _with_status(["STOPPING=1"], status_text)


def status(text: str) -> bool:
    """Free-form one-line status shown by `systemctl status`."""
    return notify(_status_field(text))


def watchdog_interval() -> float | None:
    """Watchdog timeout in seconds if systemd expects pings from *this* process.

    Mirrors sd_watchdog_enabled(3): WATCHDOG_USEC must be a positive integer,
    and if WATCHDOG_PID is set it must equal our pid (otherwise the variables
    were inherited by a child that is not the supervised process). Ping at about
    half this interval to tolerate event-loop jitter.
    """
    raw = os.environ.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_raw = os.environ.get("WATCHDOG_PID")
    if pid_raw:
        try:
            if int(pid_raw) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000


def watchdog_ping() -> bool:
    """Tell systemd the event loop is alive; missing pings for WatchdogSec= make
    systemd kill (and, with Restart=on-failure, restart) the service."""
    return notify("WATCHDOG=1")
