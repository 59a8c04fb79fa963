"""server.workers above 1: a supervisor binds the listener and forks workers that share it.

The supervisor never serves and never runs an event loop (each worker makes its own,
after the fork, with its own upstream client). It:

- starts with $PROMETHEUS_MULTIPROC_DIR set, so that prometheus_client keeps each
  process's values in a file from its import on; the process that compiled the file
  first prepares the instance directory and re-executes itself with the variable set
  (same pid, so systemd's MAINPID stays), since the variable is read at import;
- forks the workers with the table it compiled, and replaces one that dies, after a
  back-off that grows while workers die young; a dead worker's live gauges leave
  /metrics and its /statsz counters are kept (ops/metrics.py, ops/instance_stats.py);
- on SIGHUP compiles the file itself: if it does not compile nothing changes anywhere,
  else every worker is sent SIGHUP and reloads as a single process does;
- on SIGTERM closes its copy of the listener and has every worker drain;
- alone talks to systemd: READY=1 once every worker says it serves (one line each on
  a pipe), RELOADING=1 then READY=1 once every worker has reloaded, STOPPING=1;
- starts the machine's state process before the workers (limits/state_server.py: with
  `state: memory` the workers count limits there, so they hold across workers), restarts
  it when it dies, and stops it after the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from tornado.netutil import bind_sockets

from dsl.compiler import compile_file
from dsl.errors import ConfigError
from dsl.table import Table
from handlers.registry import HANDLERS
from limits import state_server
from limits.state import STATE_SOCKET_ENV
from ops import instance_stats, metrics, sdnotify
from ops.instance_stats import InstanceStats
from server import lifecycle

log = logging.getLogger("gateway")

INSTANCE_DIR_ENV = "GATEWAY_INSTANCE_DIR"  # set by the supervisor for its re-executed self
_SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
_BACKOFF = (0.5, 30.0)  # first and longest pause before replacing a worker that died
_YOUNG = 30.0  # a worker that dies younger than this doubles the next pause
_KILL_GRACE = 5.0  # past drain_timeout, workers still running are killed
_SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def supervise(config_path: str, table: Table) -> int:
    """Run the instance until SIGTERM; the exit status of `gateway.py serve`."""
    prepared = os.environ.get(INSTANCE_DIR_ENV)
    if prepared is None or str(Path(prepared) / "metrics") != metrics.MULTIPROCESS_DIR:
        _reexecute_with_instance_directory()
    directory = Path(prepared)
    try:
        return Supervisor(config_path, table, directory).run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _reexecute_with_instance_directory() -> NoReturn:
    """A fresh instance directory (wiped of any earlier run's files), then exec this very command.

    Under $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) when set, else a new temp dir.
    """
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        directory = Path(runtime) / "workers"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
    else:
        directory = Path(tempfile.mkdtemp(prefix="llm-gateway-"))
    (directory / "metrics").mkdir()
    (directory / "statsz").mkdir()
    os.environ[INSTANCE_DIR_ENV] = str(directory)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory / "metrics")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


@dataclasses.dataclass(eq=False, slots=True)
class Worker:
    slot: int
    pid: int
    pipe: int  # read end: the worker's lines ("ready", "reloaded", "rejected", "alive")
    started: float
    generation: int  # the supervisor's reload count when it was forked
    ready: bool = False
    pending: bytes = b""
    heard: float = 0.0  # monotonic time of its last line


class Supervisor:
    def __init__(self, config_path: str, table: Table, directory: Path) -> None:
        self.config_path = config_path
        self.table = table
        self.count = table.server.workers
        self.statsz = directory / "statsz"
        self.state_socket = directory / "state.sock"
        self.state: subprocess.Popen[str] | None = None
        self.started = time.time()
        self.workers: dict[int, Worker] = {}  # by pid
        self.restarts: dict[int, float] = {}  # slot → when to fork its replacement
        self.backoff = [_BACKOFF[0]] * self.count
        self.generation = 0  # successful reloads so far
        self.awaiting: set[int] = set()  # pids yet to report on the reload in progress
        self.reload_ok = True
        self.announced = False
        self.stopping_since: float | None = None
        self.signals: list[int] = []
        self.sockets: list[socket.socket] = []
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Only the supervisor holds the write end: when it dies, however, each worker reads EOF.
        self.life_read, self.life_write = os.pipe2(os.O_CLOEXEC)
        # systemd's watchdog, which the supervisor pings; each worker must say it is alive as often
        self.watchdog = sdnotify.watchdog_interval()

    # -- main loop ------------------------------------------------------------------

    def run(self) -> int:
        settings = self.table.server
        try:
            self.sockets = bind_sockets(settings.listen_port, settings.listen_host)
        except OSError as exc:
            log.error("cannot listen: %s", exc)
            return 1
        if not self.start_state():
            return 1
        for sig in _SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self.wake_write)
        log.info("listening on %s:%d (%s) with %d workers", settings.listen_host, settings.listen_port,
                 self.config_path, self.count)
        for slot in range(self.count):
            self.fork(slot)
        watchdog = self.watchdog
        next_ping = 0.0
        while self.workers or self.stopping_since is None:
            now = time.monotonic()
            if watchdog and now >= next_ping:
                sdnotify.watchdog_ping()
                next_ping = now + watchdog / 2
                self.kill_silent_workers(now, watchdog)
            self.wait(min([next_ping - now if watchdog else 1.0, 1.0,
                           *(due - now for due in self.restarts.values())]))
            self.handle_signals()
            now = time.monotonic()
            for slot, due in list(self.restarts.items()):
                if due <= now and self.stopping_since is None:
                    del self.restarts[slot]
                    self.fork(slot)
            if self.stopping_since is not None and now - self.stopping_since > (
                settings.drain_timeout + _KILL_GRACE
            ):
                for pid in self.workers:
                    log.warning("worker %d still running after the drain deadline: killed", pid)
                    os.kill(pid, signal.SIGKILL)
                self.stopping_since = now  # once more the grace, for the kills to be reaped
        if self.state is not None:
            self.state.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
                self.state.wait(5)
        log.info("stopped")
        return 0

    def start_state(self) -> bool:
        """The state process, on a socket the workers (and their replacements) inherit in the
        environment; started whatever `state:` says now, since a reload may turn it to memory."""
        try:
            self.state = state_server.start_process(str(self.state_socket))
        except (OSError, RuntimeError) as exc:
            log.error("cannot start the state process: %s", exc)
            return False
        os.environ[STATE_SOCKET_ENV] = str(self.state_socket)
        return True

    def wait(self, timeout: float) -> None:
        """Until a signal, a worker's line, or `timeout` seconds."""
        pipes = {worker.pipe: worker for worker in self.workers.values()}
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([self.wake_read, *pipes], [], [], max(timeout, 0.0))
            for fd in readable:
                if fd == self.wake_read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_read, 4096)
                else:
                    self.read_lines(pipes[fd])

    def _on_signal(self, number: int, _frame: object) -> None:
        self.signals.append(number)

    def handle_signals(self) -> None:
        while self.signals:
            number = self.signals.pop(0)
            if number == signal.SIGCHLD:
                self.reap()
            elif number == signal.SIGHUP:
                self.reload()
            elif self.stopping_since is None:  # SIGTERM, SIGINT
                self.stop()

    # -- workers ----------------------------------------------------------------------

    def fork(self, slot: int) -> None:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # none may reach the child's copy of ours
        try:
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                os._exit(self._worker(slot, write_end))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        os.close(write_end)
        self.workers[pid] = Worker(slot, pid, read_end, time.monotonic(), self.generation)
        log.info("worker %d started (pid %d)", slot, pid)

    def _worker(self, slot: int, report: int) -> int:
        """The child: forget the supervisor's signals, pipes and systemd socket; serve."""
        try:
            signal.set_wakeup_fd(-1)
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until its event loop handles it
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            siblings = (w.pipe for w in self.workers.values())
            for fd in (self.wake_read, self.wake_write, self.life_write, *siblings):
                os.close(fd)
            for name in _SYSTEMD_ENV:  # the supervisor alone talks to systemd
                os.environ.pop(name, None)
            for handler in logging.getLogger().handlers:
                handler.addFilter(WorkerTag(slot))
            instance = InstanceStats(self.statsz, self.started)
            announce = SupervisorPipe(report, self.life_read, self.watchdog)
            serving = lifecycle.serve(self.config_path, self.table, announce, self.sockets, instance)
            return lifecycle.run(serving)
        except BaseException:
            log.exception("worker failed")
            return 1
        finally:
            sys.stderr.flush()

    def read_lines(self, worker: Worker) -> None:
        try:
            data = os.read(worker.pipe, 4096)
        except OSError:
            data = b""
        if not data:  # the worker is gone; reap() has or will have its status
            return
        *lines, worker.pending = (worker.pending + data).split(b"\n")
        for line in lines:
            self.on_report(worker, line.decode("ascii", "replace"))

    def on_report(self, worker: Worker, line: str) -> None:
        worker.heard = time.monotonic()
        if line == "ready":
            worker.ready = True
            if worker.generation < self.generation:  # forked before the reload: catch up
                os.kill(worker.pid, signal.SIGHUP)
                worker.generation = self.generation
            if not self.announced and sum(w.ready for w in self.workers.values()) == self.count:
                self.announced = True
                sdnotify.ready(self.status())
                log.info("all %d workers serving", self.count)
        elif line in ("reloaded", "rejected"):
            if line == "rejected":  # the file changed again between our compile and its own
                log.error("worker %d (pid %d) rejected the reload", worker.slot, worker.pid)
                self.reload_ok = False
            self.reported(worker.pid)

    def kill_silent_workers(self, now: float, watchdog: float) -> None:
        """A serving worker whose event loop has been stuck for the watchdog's interval is
        killed (and so replaced), as systemd kills a single process that stops pinging."""
        for worker in self.workers.values():
            if worker.ready and now - worker.heard > watchdog:
                log.error("worker %d (pid %d) silent for %.0fs: killed", worker.slot, worker.pid, watchdog)
                os.kill(worker.pid, signal.SIGKILL)
                worker.heard = now  # reaped soon; not killed twice meanwhile

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.state is not None and pid == self.state.pid:
                self.state.returncode = os.waitstatus_to_exitcode(status)
                metrics.forget_process(pid)
                if self.stopping_since is None:  # the limits' counts start afresh
                    log.error("the state process (pid %d) %s; restarting it", pid, _how_it_ended(status))
                    self.start_state()
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.pipe)
            metrics.forget_process(pid)
            instance_stats.retire(self.statsz, pid)
            self.reported(pid)
            if self.stopping_since is not None:
                log.info("worker %d (pid %d) stopped", worker.slot, pid)
                continue
            age = time.monotonic() - worker.started
            pause = self.backoff[worker.slot]
            self.backoff[worker.slot] = min(pause * 2, _BACKOFF[1]) if age < _YOUNG else _BACKOFF[0]
            log.error("worker %d (pid %d) %s; replacing it in %.1fs",
                      worker.slot, pid, _how_it_ended(status), pause)
            self.restarts[worker.slot] = time.monotonic() + pause
            sdnotify.status(self.status())

    # -- reload and stop ----------------------------------------------------------------

    def reload(self) -> None:
        """Compile first: a file that does not compile reaches no worker."""
        if self.stopping_since is not None:
            return
        sdnotify.reloading()
        try:
            table = compile_file(self.config_path, handlers=HANDLERS.rules)
        except ConfigError as exc:
            log.error("reload rejected, still serving the previous configuration:\n%s", exc)
        except Exception:  # a compiler bug must not pass for a good reload
            log.exception("reload failed inside the compiler; still serving the previous configuration")
        else:
            lifecycle.restart_only_changes(self.table, table)
            # What replacements start with: the new table, with the settings bound at start kept.
            running = {name: getattr(self.table.server, name) for name in lifecycle.RESTART_ONLY}
            self.table = dataclasses.replace(table, server=dataclasses.replace(table.server, **running))
            self.generation += 1
            self.reload_ok = True
            for worker in self.workers.values():
                if worker.ready:  # the others catch up when they are
                    worker.generation = self.generation
                    self.awaiting.add(worker.pid)
                    os.kill(worker.pid, signal.SIGHUP)
            if self.awaiting:
                return  # READY=1 once they have all reported
            self.finish_reload(True)
            return
        self.finish_reload(False)

    def reported(self, pid: int) -> None:
        if pid in self.awaiting:
            self.awaiting.discard(pid)
            if not self.awaiting:
                self.finish_reload(self.reload_ok)

    def finish_reload(self, ok: bool) -> None:
        metrics.RELOADS.labels(result="success" if ok else "failure").inc()
        if ok:
            log.info("configuration reloaded from %s by every worker", self.config_path)
        sdnotify.ready(self.status())

    def stop(self) -> None:
        """Refuse new connections at once (no copy of the listener stays open), drain the workers."""
        sdnotify.stopping()
        self.stopping_since = time.monotonic()
        self.restarts.clear()
        for sock in self.sockets:
            sock.close()
        log.info("draining %d workers", len(self.workers))
        for pid in self.workers:
            os.kill(pid, signal.SIGTERM)

    def status(self) -> str:
        return f"Serving {self.config_path} with {len(self.workers)} of {self.count} workers"


class WorkerTag(logging.Filter):
    """Starts a worker's log records with which worker wrote them (they share one stderr)."""

    def __init__(self, slot: int) -> None:
        super().__init__()
        self.tag = f"[worker {slot}, pid {os.getpid()}] "

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.tag):
            record.msg = self.tag + str(record.msg)
        return True


class SupervisorPipe:
    """A worker's announcer: one line to the supervisor, which speaks to systemd for all."""

    def __init__(self, fd: int, life: int, watchdog: float | None) -> None:
        self.fd = fd
        self.life = life  # readable (EOF) once the supervisor is gone
        self.watchdog = watchdog

    def _say(self, line: bytes) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: nothing to tell
            os.write(self.fd, line + b"\n")

    def ready(self, status: str) -> None:
        self._say(b"ready")

    def reloading(self) -> None:
        pass

    def reloaded(self, ok: bool, status: str) -> None:
        self._say(b"reloaded" if ok else b"rejected")

    def stopping(self) -> None:
        pass

    def watchdog_interval(self) -> float | None:
        return self.watchdog

    def alive(self) -> None:
        self._say(b"alive")

    def when_orphaned(self, stop: Callable[[], None]) -> None:
        """A supervisor killed outright (SIGKILL) leaves no worker serving: each drains and exits."""
        loop = asyncio.get_running_loop()

        def orphaned() -> None:
            loop.remove_reader(self.life)
            log.error("the supervisor is gone: draining")
            stop()

        loop.add_reader(self.life, orphaned)


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
