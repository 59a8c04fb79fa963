"""One libcurl multi handle driven by the running asyncio loop (Tornado's IOLoop runs on it).

libcurl says which sockets it waits on (the socket callback) and when it next needs to
act (the timer callback: one loop timer, replaced each time); `socket_action` is called
when a socket is ready or the timer is due, and the
transfers that completed are then read off with `info_read`, but only after an action
whose count of running transfers changed: a streamed event is one action, and most
actions complete nothing. Nothing here blocks: every socket is non-blocking, and libcurl
does its work inside `socket_action`.

libcurl forbids calling it back from its own callbacks, so the timer callback only
schedules; a timer of 0 ms (new transfers, a transfer resumed after a pause) runs on
the loop's next turn. An action early is harmless (libcurl does what is due, and says
when next), one late is not: a loop timer that fires no later than libcurl's new
deadline is kept rather than made anew, as every new transfer would otherwise do twice
(0 ms, then its timeout), and one that libcurl no longer needs (no transfer left to time)
is left to fire rather than cancelled, for the next transfer to keep.

The sockets are watched by an epoll set of the driver's own, which the loop watches as
one reader, not by the loop itself. libcurl says POLL_REMOVE at the end of every transfer
and POLL_IN at the next on the same kept-alive connection: as loop readers that is a
reader made and dropped per request (uvloop: a poll handle, an ioctl and two epoll_ctl,
about 14 K instructions). In the driver's set a socket is left registered over its
connection's idle time (one epoll_ctl re-arms it), which only the kernel makes safe: a
socket libcurl closes leaves the set as it closes, so a number reused by another socket
is never taken for it, and a loop transport on that number is not in the set at all.
An idle socket that turns ready (the provider closed the connection) is taken out.

With one socket in the set (one connection in use or kept: every request at concurrency 1),
the set is ready only because that socket is, and it is acted on without asking the set (an
epoll_wait, a system call, per streamed event). libcurl is then told that what it waits for
is ready: the kernel reports no socket that is not, and should one come to be taken for
ready, libcurl's read finds nothing (EAGAIN) and it waits on.

libcurl (8.x) also asks, for every transfer, that the loop watch its multi handle's
wakeup eventfds, which only ever wake it for `curl_multi_wakeup` (pycurl offers no such
call): a watch and an unwatch per request, seven system calls, for nothing. The fds the
multi handle opens as it is made are those, and are not watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
from collections.abc import Callable
from typing import Any

import pycurl

log = logging.getLogger("gateway.upstream")

POLL_IN, POLL_OUT = pycurl.POLL_IN, pycurl.POLL_OUT
# libcurl's wish (POLL_IN 1, POLL_OUT 2, POLL_INOUT 3) -> the epoll events that answer it.
_EPOLL_EVENTS = (0, select.EPOLLIN, select.EPOLLOUT, select.EPOLLIN | select.EPOLLOUT)
_BROKEN = select.EPOLLERR | select.EPOLLHUP  # reported whatever was asked: wake what libcurl waits for
# The epoll events a ready socket reports (EPOLLIN 1, EPOLLOUT 4, EPOLLERR 8, EPOLLHUP 16: the
# low five bits) -> what libcurl is told is ready, before masking with what it waits for: the
# ready direction (CSELECT_IN/OUT have POLL_IN/OUT's values), both after an error or hang-up.
_SELECTED = tuple(pycurl.CSELECT_IN | pycurl.CSELECT_OUT if events & _BROKEN
                  else (events & select.EPOLLIN and pycurl.CSELECT_IN)
                  | (events & select.EPOLLOUT and pycurl.CSELECT_OUT) for events in range(32))
# Sockets acted on per turn of the loop (the rest stay ready for the next). At most 42: epoll.poll
# allocates 12 bytes a socket for each call, and up to 512 bytes come from Python's own allocator
# rather than malloc and free (a streamed event is one call).
READY_AT_ONCE = 40
UNKNOWN = -1  # a count of running transfers that no action returns
Finished = Callable[[Any, int, str], None]  # the handle added, curl error (0: none), its message


class Driver:
    """Runs transfers added with `add` until `finished(handle, error, message)` reports each."""

    def __init__(self, finished: Finished, max_idle_connections: int) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None  # the one running the first transfer
        self._finished = finished
        before = _eventfds()
        self._multi = pycurl.CurlMulti()
        self._wakeup = _eventfds() - before  # never watched (see the module docstring)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._schedule)
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_idle_connections)
        # Bound once: every streamed chunk is an action, and each read of a CurlMulti's method
        # goes through pycurl's own attribute lookup and makes a bound method (about 1 K instructions).
        self._socket_action = self._multi.socket_action
        self._sockets = select.epoll()  # what libcurl waits on (see the module docstring)
        self._wanted: dict[int, int] = {}  # fd in the set -> the POLL_* libcurl asked for (0: idle)
        self._lone = -1  # the fd in the set when it holds one, else -1 (see `_ready`)
        self._soon: asyncio.Handle | None = None  # libcurl's timer at 0 ms: the loop's next turn
        self._later: asyncio.TimerHandle | None = None  # its timer, or earlier
        # Transfers running after libcurl's last action; UNKNOWN once one is added or removed.
        # libcurl's count drops only when a transfer completes (and queues its message), so
        # an action that leaves it as it was has nothing for `info_read`.
        self._alive = UNKNOWN

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the transfers run on: the one running when first asked (kept, as asking
        asyncio for the running loop costs a getpid() system call on 3.11)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            loop.add_reader(self._sockets.fileno(), self._ready)
        return loop

    def add(self, handle: pycurl.Curl) -> None:
        """Start a transfer (libcurl asks for a 0 ms timer, and starts it on the next turn)."""
        self._loop = self.loop  # known before libcurl's callbacks, which use it, can run
        self._multi.add_handle(handle)
        self._alive = UNKNOWN  # one more, and it may complete in the action that counts it

    def remove(self, handle: pycurl.Curl) -> None:
        """Stop a transfer now. Mid-answer, libcurl closes its connection (HTTP/2: resets its
        stream), so the provider sees the disconnect. Never from that handle's own callback."""
        self._multi.remove_handle(handle)
        self._alive = UNKNOWN

    def close(self) -> None:
        for timer in (self._soon, self._later):
            if timer is not None:
                timer.cancel()
        self._soon = self._later = None
        if self._loop is not None:
            self._loop.remove_reader(self._sockets.fileno())
        self._multi.close()
        self._sockets.close()
        self._wanted.clear()
        self._lone = -1

    # -- libcurl's callbacks: they only note what libcurl asks for --------------------------

    def _watch(self, what: int, fd: int, multi: pycurl.CurlMulti, socketp: object) -> None:
        if fd in self._wakeup:
            return
        wanted = self._wanted
        if what == pycurl.POLL_REMOVE:
            if fd in wanted:
                wanted[fd] = 0  # idle: left in the set, for the connection's next transfer
            return
        events = _EPOLL_EVENTS[what]
        if fd in wanted:
            try:  # the set still holds the fd only if it is still the same socket
                self._sockets.modify(fd, events)
            except FileNotFoundError:  # closed since (the kernel took it out); a new one
                self._sockets.register(fd, events)
            wanted[fd] = what
        else:
            self._sockets.register(fd, events)
            wanted[fd] = what
            self._lone = fd if len(wanted) == 1 else -1

    def _schedule(self, ms: int) -> None:
        loop = self._loop
        assert loop is not None  # as for `_watch`
        if ms == 0:
            if self._soon is None:
                self._soon = loop.call_soon(self._due_soon)
            return
        if ms < 0:  # no deadline: a timer left in place fires early, which is harmless and
            return  # spares the next transfer's making one anew (one at a time: every transfer)
        later = self._later
        deadline = loop.time() + ms / 1000
        if later is not None:
            if later.when() <= deadline:
                return  # fires first: libcurl then says when next
            later.cancel()
        self._later = loop.call_at(deadline, self._due_later)

    # -- the loop's calls into libcurl -----------------------------------------------------

    def _ready(self) -> None:
        """The loop's reader of the driver's set: acts on each ready socket libcurl waits on.
        Every streamed event comes through here: the action is made inline (one call less)."""
        wanted = self._wanted
        fd = self._lone
        if fd >= 0:
            # The set is ready because its one socket is (see the module docstring), ready for
            # what libcurl waits for (CSELECT_IN/OUT have POLL_IN/OUT's values): it is acted on
            # without asking the set, or looking for it there (every streamed event at concurrency 1;
            # a loop over a copy of the set's items cost some 2 K instructions more).
            what = wanted[fd]
            if not what:  # idle, and ready: the provider closed it (or sent what it should not)
                self._forget(fd)
                return
            try:
                running = self._socket_action(fd, what)[1]
            except pycurl.error:
                log.exception("libcurl failed acting on a socket")
                running = UNKNOWN
            if running != self._alive or running == UNKNOWN:
                self._collect(running)
            return
        for fd, events in self._sockets.poll(0, READY_AT_ONCE):
            what = wanted.get(fd, 0)
            if not what:  # idle, and ready: the provider closed it (or sent what it should not)
                self._forget(fd)
                continue
            try:
                running = self._socket_action(fd, _SELECTED[events & 31] & what)[1]
            except pycurl.error:
                log.exception("libcurl failed acting on a socket")
                running = UNKNOWN
            if running != self._alive or running == UNKNOWN:
                self._collect(running)

    def _forget(self, fd: int) -> None:
        """Out of the set: libcurl finds the connection closed when it next wants it, or never."""
        wanted = self._wanted
        wanted.pop(fd, None)
        self._lone = next(iter(wanted)) if len(wanted) == 1 else -1
        with contextlib.suppress(OSError):  # closed since
            self._sockets.unregister(fd)

    def _due_soon(self) -> None:
        self._soon = None
        self._due()

    def _due_later(self) -> None:
        self._later = None
        self._due()

    def _due(self) -> None:
        try:
            running = self._socket_action(pycurl.SOCKET_TIMEOUT, 0)[1]
        except pycurl.error:
            log.exception("libcurl failed acting on its timer")
            running = UNKNOWN
        if running != self._alive or running == UNKNOWN:
            self._collect(running)
        if self._soon is None and self._later is None:
            # libcurl calls the timer callback only when its next deadline changes; one that
            # it still holds (a kept timer fired early; the loop's clock ran a hair ahead of its
            # own) is asked for here.
            ms = self._multi.timeout()
            if ms >= 0:
                self._schedule(ms)

    def _collect(self, running: int) -> None:
        """Report the transfers that completed, each removed from the multi handle first;
        `running`: libcurl's count after the action (UNKNOWN after a failed one, which is
        always followed by a look: what it did is not known)."""
        self._alive = running
        while True:
            queued, done, failed = self._multi.info_read()
            for handle in done:
                self._end(handle, 0, "")
            for handle, error, message in failed:
                self._end(handle, error, message)
            if not queued:
                return

    def _end(self, handle: pycurl.Curl, error: int, message: str) -> None:
        self._multi.remove_handle(handle)
        try:
            self._finished(handle, error, message)
        except Exception:
            log.exception("reporting the end of an upstream transfer failed")


def _eventfds() -> frozenset[int]:
    """This process's open eventfds (libcurl's transfers use sockets, which never are one);
    none where /proc is not mounted."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return frozenset()
    found = set()
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]":
                found.add(int(name))
        except OSError:  # the listing's own descriptor, closed since
            pass
    return frozenset(found)
