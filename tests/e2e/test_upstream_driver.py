"""The upstream driver (upstream/client.py, driver.py, handle.py) over real sockets to the mock.

Most tests run the client in this process, on an event loop of their own, against the
session's mock provider, whose request log says what reached it (method, headers, body,
the client's port, whether the client went away); one runs a gateway of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import socketserver
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pycurl
import pytest
import uvloop

from mock_provider import speech_bytes
from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Mock, own_gateway, read_request
from upstream.body_pipe import BodyPipe
from upstream.client import TRANSFERS_PER_DRIVER, UpstreamClient
from upstream.driver import Driver
from upstream.ended import CANCELLED, Ended
from upstream.exchange import Exchange
from upstream.request import Request, header_line

Chunk = Callable[[bytes], None]
ROUTES = """
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
"""


Test = Callable[[UpstreamClient], Coroutine[Any, Any, None]]


async def with_client(test: Test, limit: int = 4, per_driver: int = TRANSFERS_PER_DRIVER) -> None:
    """`test` with a client of its own; no callback on the loop (the driver's among them) may
    raise meanwhile: the loop would only log it and go on."""
    raised: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: raised.append(context))
    client = UpstreamClient(limit, per_driver)
    try:
        await test(client)
    finally:
        client.close()
    assert not raised, raised


def run(test: Test, limit: int = 4, per_driver: int = TRANSFERS_PER_DRIVER) -> None:
    """`test` with a client of its own, on a loop of its own."""
    asyncio.run(with_client(test, limit, per_driver))


def request(mock: Mock, method: str, path: str, body: bytes | BodyPipe | None = None,
            headers: tuple[tuple[str, str], ...] = ()) -> Request:
    lines = [header_line("Authorization", f"Bearer {PROVIDER_KEY}"), b"Expect:"]
    lines += [header_line(name, value) for name, value in headers]
    return Request(f"{mock.url}{path}", method, lines, body, 30_000, 5_000)


def chat(mock: Mock, model: str, stream: bool = False) -> Request:
    body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    return request(mock, "POST", "/v1/chat/completions", body.encode(), (("Content-Type", "application/json"),))


def exchange(client: UpstreamClient, on_chunk: Chunk | None = None) -> tuple[Exchange, bytearray]:
    """An exchange that keeps the answer (or gives each chunk to `on_chunk`)."""
    body = bytearray()
    return Exchange(client, lambda _: None, on_chunk or body.extend), body


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (on the loop, so transfers go on) until `condition` holds, or fail after 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


def entries(mock: Mock, path: str) -> list[dict[str, Any]]:
    return [entry for entry in mock.requests() if entry["path"] == path]


def test_sequential_requests_through_the_gateway_share_one_upstream_connection(
    mock: Mock, tmp_path: Path
) -> None:
    with own_gateway(mock, tmp_path, ROUTES) as gateway:
        mock.clear()
        for stream in (False, True, False, True, False):
            body = {"model": "mock/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
            status, _, answer = gateway.request("POST", "/v1/chat/completions", json.dumps(body).encode(),
                                                {"Authorization": f"Bearer {CLIENT_TOKEN}"})
            assert status == 200, answer
        seen = entries(mock, "/v1/chat/completions")
        assert len(seen) == 5 and all(entry["finished"] for entry in seen)
        assert len({entry["peer_port"] for entry in seen}) == 1, seen


def test_a_transfer_cancelled_from_its_own_chunk_closes_its_upstream_connection(mock: Mock) -> None:
    async def test(client: UpstreamClient) -> None:
        mock.clear()

        def first_chunk(data: bytes) -> None:
            streamed.cancel()  # inside libcurl's write callback: the removal is deferred

        streamed, _ = exchange(client, first_chunk)
        ended = await streamed.send(chat(mock, "gpt-big-65536", stream=True))
        assert (ended.status, ended.error) == (200, CANCELLED)
        await until(lambda: entries(mock, "/v1/chat/completions")[-1]["disconnected"], "the mock saw it go")
        after, body = exchange(client)
        assert (await after.send(chat(mock, "gpt-4o-mini"))).status == 200
        assert json.loads(body)["object"] == "chat.completion"

    run(test)


def test_a_request_beyond_the_limit_waits_its_turn_and_can_be_cancelled_while_waiting(mock: Mock) -> None:
    async def test(client: UpstreamClient) -> None:
        mock.clear()
        hanging, _ = exchange(client)
        first = asyncio.ensure_future(hanging.send(chat(mock, "gpt-4o-mini-fault-hang")))
        await until(lambda: bool(entries(mock, "/v1/chat/completions")), "the first request arrived")
        waiting, body = exchange(client)
        second = asyncio.ensure_future(waiting.send(chat(mock, "gpt-4o-mini")))
        given_up, _ = exchange(client)
        third = asyncio.ensure_future(given_up.send(chat(mock, "gpt-4o-mini")))
        await asyncio.sleep(0)
        assert client.waiting == 2
        given_up.cancel()
        ended = await third
        assert (ended.status, ended.error) == (0, CANCELLED)
        assert client.waiting == 1 and not second.done()
        assert len(entries(mock, "/v1/chat/completions")) == 1  # the queued ones sent nothing
        hanging.cancel()
        assert (await first).error == CANCELLED
        assert (await second) == Ended(200)
        assert json.loads(body)["object"] == "chat.completion"
        assert len(entries(mock, "/v1/chat/completions")) == 2

    run(test, limit=1)


def test_the_idle_watch_ends_a_silent_transfer_but_not_one_waiting_for_the_clients_body(mock: Mock) -> None:
    """A request's idle timeout ends a transfer whose upstream sends nothing, as a timeout; while
    the upload waits for the client's next chunk, the upstream's silence is the gateway's doing."""

    async def test(client: UpstreamClient) -> None:
        silent, _ = exchange(client)
        ended = await silent.send(replace(chat(mock, "gpt-4o-mini-fault-hang"), idle_timeout=0.2))
        assert ended == Ended(0, pycurl.E_OPERATION_TIMEDOUT, "the upstream sent nothing for 0.2s (idle_timeout)")
        pipe = BodyPipe(None)
        uploading, _ = exchange(client)
        sending = asyncio.ensure_future(uploading.send(replace(request(mock, "PUT", "/nowhere", pipe),
                                                               idle_timeout=0.2)))
        pipe.write(b"slow ")
        await asyncio.sleep(0.6)  # the client takes three idle timeouts to send the rest
        pipe.write(b"upload")
        pipe.end()
        assert (await sending) == Ended(404)
        assert entries(mock, "/nowhere")[-1]["body"] == "slow upload"

    run(test)


def test_the_head_reaches_the_exchange_once_before_the_body_and_without_one(mock: Mock) -> None:
    """libcurl collects the header lines itself; the exchange reads the head just before the
    first chunk (a stream), or as the transfer ends (a HEAD answer has no body), once."""

    async def test(client: UpstreamClient) -> None:
        seen: list[tuple[str, object]] = []

        def on_headers(done: Exchange) -> None:
            seen.append(("head", (done.status, done.streaming, done.headers.get("content-type"))))

        streamed = Exchange(client, on_headers, lambda data: seen.append(("chunk", len(data))))
        assert await streamed.send(chat(mock, "gpt-4o-mini", stream=True)) == Ended(200)
        assert seen[0] == ("head", (200, True, "text/event-stream"))
        assert len(seen) > 1 and all(kind == "chunk" for kind, _ in seen[1:])
        seen.clear()
        bodiless = Exchange(client, on_headers, lambda data: seen.append(("chunk", len(data))))
        assert (await bodiless.send(request(mock, "HEAD", "/nowhere"))).status == 404
        assert len(seen) == 1 and seen[0][0] == "head" and bodiless.status == 404

    run(test, limit=1)


def test_a_reused_handle_carries_nothing_of_the_previous_request_over(mock: Mock) -> None:
    """One handle serves every request in turn: each gets its own method and body, no other."""

    async def test(client: UpstreamClient) -> None:
        mock.clear()
        pipe = BodyPipe(None)
        pipe.write(b"streamed ")
        pipe.write(b"upload")
        pipe.end()
        sent = [  # each method also twice in a row: the second sets only what changed
            ("POST", b'{"a": 1}'),
            ("POST", b'{"b": 2}'),
            ("GET", None),
            ("PUT", pipe),
            ("DELETE", None),
            ("HEAD", None),
            ("HEAD", None),
            ("PATCH", b"patched"),
            ("PATCH", b"again"),
            ("OPTIONS", None),
            ("GET", None),
            ("POST", b"large" * 1000),  # past KEPT_BODY: libcurl's copy is dropped as it ends
            ("POST", b"last"),
        ]
        for method, body in sent:
            done, _ = exchange(client)
            ended = await done.send(request(mock, method, "/nowhere", body))
            assert (ended.status, ended.error) == (404, 0), (method, ended)
        seen = entries(mock, "/nowhere")
        assert [entry["method"] for entry in seen] == [method for method, _ in sent]
        bodies = [entry.get("body", "") for entry in seen]
        assert bodies == ['{"a": 1}', '{"b": 2}', "", "streamed upload", "", "", "", "patched", "again", "", "",
                          "large" * 1000, "last"]
        for entry in seen:
            framed = "content-length" in entry["headers"] or "transfer-encoding" in entry["headers"]
            assert framed == (entry["method"] in ("POST", "PUT", "PATCH")), entry
        assert len({entry["peer_port"] for entry in seen}) == 1  # and the connection was kept
        # The URL too is set only when it changes: each request reaches its own path.
        mock.clear()
        paths = ["/elsewhere", "/elsewhere", "/nowhere", "/elsewhere"]
        for path in paths:
            done, _ = exchange(client)
            ended = await done.send(request(mock, "GET", path, None))
            assert (ended.status, ended.error) == (404, 0), (path, ended)
        assert [entry["path"] for entry in mock.requests()] == paths

    run(test, limit=1)


@pytest.mark.parametrize("where", ["headers", "chunk"])
def test_a_raising_callback_fails_its_transfer_and_leaves_the_driver_working(mock: Mock, where: str) -> None:
    async def test(client: UpstreamClient) -> None:
        def fail(_: object) -> None:
            raise RuntimeError("a bug in a converter")

        broken = Exchange(client, fail if where == "headers" else lambda _: None,
                          fail if where == "chunk" else lambda _: None)
        ended = await broken.send(chat(mock, "gpt-4o-mini", stream=True))
        assert ended.failed and ended.error != CANCELLED
        assert ended.message.startswith("internal error"), ended
        for _ in range(3):
            after, body = exchange(client)
            assert (await after.send(chat(mock, "gpt-4o-mini"))) == Ended(200)
            assert json.loads(body)["object"] == "chat.completion"

    run(test, limit=1)


def test_a_held_transfer_resumes_where_it_stopped(mock: Mock) -> None:
    """Held after every chunk and released on the loop's next turn: libcurl's kept bytes come
    back, and the transfer reads on (the resume goes through the driver's timer)."""

    async def test(client: UpstreamClient) -> None:
        loop = asyncio.get_running_loop()
        size = 4 << 20
        body = bytearray()
        holds = 0

        def on_chunk(data: bytes) -> None:
            nonlocal holds
            body.extend(data)
            held.hold()
            holds += 1
            loop.call_soon(held.release)

        held = Exchange(client, lambda _: None, on_chunk)
        speech = {"model": "tts-1", "input": "held", "voice": "alloy", "x_mock_bytes": size}
        ended = await held.send(request(mock, "POST", "/v1/audio/speech", json.dumps(speech).encode(),
                                        (("Content-Type", "application/json"),)))
        assert ended == Ended(200)
        assert bytes(body) == speech_bytes("held", "alloy", size)
        assert holds > 10

    run(test)


def test_a_held_transfer_does_not_hold_up_others_to_the_same_upstream(mock: Mock) -> None:
    """A slow reader's paused stream keeps its connection; the next request opens another."""

    async def test(client: UpstreamClient) -> None:
        mock.clear()
        held, _ = exchange(client, lambda _: held.hold())
        first = asyncio.ensure_future(held.send(chat(mock, "gpt-big-65536", stream=True)))
        await until(lambda: held.held, "the first answer is held")
        second, body = exchange(client)
        assert (await second.send(chat(mock, "gpt-4o-mini"))) == Ended(200)
        assert json.loads(body)["object"] == "chat.completion"
        held.cancel()
        assert (await first).error == CANCELLED

    run(test)



def test_an_ended_exchange_lets_go_of_its_callbacks(mock: Mock) -> None:
    """Its callbacks hold the handler that holds it: kept, every request would be a cycle
    left for the collector (whose work under load was a tenth of the gateway's CPU)."""

    class Owner:
        exchange: Exchange

    def keeper(owner: Owner) -> Chunk:
        return lambda data: owner.__dict__.setdefault("got", data)

    async def test(client: UpstreamClient) -> None:
        owner = Owner()
        owner.exchange = Exchange(client, lambda _: None, keeper(owner))
        ended = await owner.exchange.send(chat(mock, "gpt-4o-mini"))
        assert ended.status == 200 and owner.__dict__.get("got")
        freed = weakref.ref(owner)
        gc.disable()
        try:
            del owner
            assert freed() is None, "the ended exchange still holds its owner"
        finally:
            gc.enable()

    run(test)


def test_transfers_that_end_amid_others_streaming_are_each_reported(mock: Mock) -> None:
    """The driver reads completed transfers off libcurl only after an action that changed its
    count of running ones (a streamed event changes nothing): transfers ending one by one
    while others stream, or cancelled or cut mid-stream, each end."""

    async def test(client: UpstreamClient) -> None:
        models = ["gpt-delay-1", "gpt-delay-3", "gpt-4o-mini", "gpt-4o-mini-fault-cut", "gpt-delay-2"]
        streams = [exchange(client) for _ in models]
        cancelled, _ = exchange(client, lambda _: cancelled.cancel())
        ended = await asyncio.wait_for(asyncio.gather(
            *(ex.send(chat(mock, model, stream=True)) for (ex, _), model in zip(streams, models, strict=True)),
            cancelled.send(chat(mock, "gpt-delay-3", stream=True))), 10)
        assert [result.failed for result in ended] == ["fault-cut" in model for model in models] + [True]
        assert ended[-1].error == CANCELLED
        for (_, body), model in zip(streams, models, strict=True):
            assert "fault-cut" in model or body.endswith(b"data: [DONE]\n\n"), (model, bytes(body[-80:]))

    run(test, limit=8)


def test_a_transfer_ending_just_after_another_starts_is_reported(mock: Mock) -> None:
    """A transfer added while a stream's last event is held, the stream released at once: the
    action that ends the stream is the first to count the new transfer, so libcurl's count
    comes out as it was, and the driver must read the ended stream off all the same (the new
    transfer never ends, so nothing else would)."""

    async def test(client: UpstreamClient) -> None:
        loop = asyncio.get_running_loop()
        hanging, _ = exchange(client)
        started: list[asyncio.Future[Ended]] = []

        def start_and_release() -> None:
            started.append(asyncio.ensure_future(hanging.send(chat(mock, "gpt-4o-mini-fault-hang"))))
            stream.release()  # before the driver's first action for the new transfer

        def on_chunk(data: bytes) -> None:
            body.extend(data)
            if b'"finish_reason":"' in data and not started:
                stream.hold()  # libcurl keeps [DONE] and the stream's end until the release
                loop.call_later(0.2, start_and_release)

        body = bytearray()
        stream = Exchange(client, lambda _: None, on_chunk)
        assert (await asyncio.wait_for(stream.send(chat(mock, "gpt-delay-1", stream=True)), 10)) == Ended(200)
        assert body.endswith(b"data: [DONE]\n\n") and started
        hanging.cancel()
        assert (await started[0]).error == CANCELLED

    run(test)


def test_a_shorter_timeout_after_a_longer_one_still_ends_its_transfer_in_time(mock: Mock) -> None:
    """libcurl's next deadline moves earlier when a transfer with a shorter timeout starts
    after one with a longer: the driver keeps a loop timer that fires before libcurl's next
    deadline (an early action is harmless), never one that fires after it."""

    async def test(client: UpstreamClient) -> None:
        patient, _ = exchange(client)
        hasty, _ = exchange(client)
        slow = replace(chat(mock, "gpt-4o-mini-fault-hang"), timeout_ms=60_000, connect_timeout_ms=60_000)
        waiting = asyncio.ensure_future(patient.send(slow))
        await asyncio.sleep(0.2)  # its timer is set first
        ended = await asyncio.wait_for(hasty.send(replace(chat(mock, "gpt-4o-mini-fault-hang"), timeout_ms=300)), 10)
        assert ended.error == pycurl.E_OPERATION_TIMEDOUT, ended
        assert not waiting.done()
        patient.cancel()
        assert (await waiting).error == CANCELLED

    run(test)


def test_a_reused_handle_takes_each_requests_own_timeout(mock: Mock) -> None:
    """One handle in turn: a request's timeout is its own, not the one before it's."""

    async def test(client: UpstreamClient) -> None:
        hang = chat(mock, "gpt-4o-mini-fault-hang")
        for timeout_ms, error in ((60_000, 0), (300, pycurl.E_OPERATION_TIMEDOUT), (60_000, 0)):
            done, _ = exchange(client)
            if error:
                ended = await asyncio.wait_for(done.send(replace(hang, timeout_ms=timeout_ms)), 10)
            else:
                ended = await done.send(replace(chat(mock, "gpt-4o-mini"), timeout_ms=timeout_ms))
            assert ended.error == error, (timeout_ms, ended)

    run(test, limit=1)


def loop_readers(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Records the fds `loop` is asked to read from here on."""
    readers: list[int] = []
    add = loop.add_reader

    def recording(fd: int, *args: Any) -> None:
        readers.append(fd)
        add(fd, *args)

    loop.add_reader = recording  # type: ignore[method-assign]
    return readers


def in_set(epoll_fd: int) -> set[int]:
    """The fds an epoll set holds, as the kernel lists them."""
    with open(f"/proc/self/fdinfo/{epoll_fd}") as info:
        return {int(line.split()[1]) for line in info if line.startswith("tfd:")}


class KeepAlive:
    """An HTTP/1.1 server in a thread of its own that answers every request `ok` on a kept-alive
    connection, and closes its connections when told to."""

    def __init__(self) -> None:
        self.connections: list[socket.socket] = []
        connections = self.connections

        class Answer(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                connections.append(self.connection)
                while read_request(self.rfile):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close_connections(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):  # closed already: the client went away
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()

    def stop(self) -> None:
        self.close_connections()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def keep_alive() -> Iterator[KeepAlive]:
    server = KeepAlive()
    yield server
    server.stop()


def get(url: str) -> Request:
    return Request(f"{url}/ok", "GET", [], None, 10_000, 5_000)


def test_the_loop_watches_one_set_of_sockets_and_libcurls_own_wakeup_eventfds_are_never_in_it(
    mock: Mock
) -> None:
    """The driver has the loop watch one epoll set of its own (upstream/driver.py), which holds
    the transfers' sockets alone: libcurl (8.x) also asks, for every transfer, that its multi
    handle's wakeup eventfds be watched, though they only wake it for curl_multi_wakeup, which
    nothing here calls. The transfers still end, streamed and not."""

    async def test(client: UpstreamClient) -> None:
        readers = loop_readers(asyncio.get_running_loop())
        for model in ("gpt-delay-1", "gpt-4o-mini"):  # a stream read as it comes, then an answer
            ex, body = exchange(client)
            assert (await asyncio.wait_for(ex.send(chat(mock, model, stream=True)), 10)) == Ended(200)
            assert body.endswith(b"data: [DONE]\n\n")
        assert [os.readlink(f"/proc/self/fd/{fd}") for fd in readers] == ["anon_inode:[eventpoll]"]
        held = in_set(readers[0])
        assert held and all(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in held), held

    run(test)


def test_transfers_past_a_drivers_share_run_on_the_next_and_each_reuses_its_own_connections(
    mock: Mock
) -> None:
    """Past `per_driver` transfers at once, handles run on another multi handle, each pooling the
    connections of its own (libcurl walks a pool's every connection to a host for each new
    transfer): five streams at once on three drivers, twice, over the same five connections; a
    transfer on the last driver is cancelled mid-stream and the others end as they should."""

    async def test(client: UpstreamClient) -> None:
        readers = loop_readers(asyncio.get_running_loop())
        mock.clear()
        for _ in range(2):
            sent = [exchange(client) for _ in range(5)]
            ends = [asyncio.ensure_future(ex.send(chat(mock, "gpt-delay-20", stream=True))) for ex, _ in sent]
            assert await asyncio.wait_for(asyncio.gather(*ends), 10) == [Ended(200)] * 5
            assert all(body.endswith(b"data: [DONE]\n\n") for _, body in sent)
        assert [os.readlink(f"/proc/self/fd/{fd}") for fd in readers] == ["anon_inode:[eventpoll]"] * 3
        seen = entries(mock, "/v1/chat/completions")
        assert len(seen) == 10 and len({entry["peer_port"] for entry in seen}) == 5, seen
        sent = [exchange(client) for _ in range(5)]
        ends = [asyncio.ensure_future(ex.send(chat(mock, "gpt-delay-20", stream=True))) for ex, _ in sent]
        last, body = sent[-1]
        await until(lambda: bool(body), "the last transfer's first chunk")
        last.cancel()
        assert (await ends[-1]).error == CANCELLED
        assert await asyncio.wait_for(asyncio.gather(*ends[:-1]), 10) == [Ended(200)] * 4

    run(test, limit=5, per_driver=2)


def test_an_idle_connection_the_provider_closes_leaves_the_set_and_the_next_request_connects_anew(
    keep_alive: KeepAlive
) -> None:
    """A kept-alive connection stays in the driver's set while idle; when the provider closes it,
    it turns ready, and is taken out (left in, it would wake the loop on every turn)."""

    async def test(client: UpstreamClient) -> None:
        readers = loop_readers(asyncio.get_running_loop())
        ex, body = exchange(client)
        assert (await ex.send(get(keep_alive.url))) == Ended(200) and body == b"ok"
        (idle,) = in_set(readers[0])
        keep_alive.close_connections()
        await until(lambda: idle not in in_set(readers[0]), "the closed connection left the set")
        spent = time.process_time()
        await asyncio.sleep(0.3)
        assert time.process_time() - spent < 0.15  # no turn of the loop for it since
        ex, body = exchange(client)
        assert (await asyncio.wait_for(ex.send(get(keep_alive.url)), 10)) == Ended(200) and body == b"ok"
        # the new connection, if libcurl had to wait on it (an answer read at once never is)
        assert len(in_set(readers[0])) <= 1

    uvloop.run(with_client(test))


def test_a_socket_libcurl_closed_while_idle_is_never_taken_for_one_with_its_number(
    keep_alive: KeepAlive
) -> None:
    """libcurl closes an idle connection it no longer keeps without a word to the driver. The
    kernel takes it out of the driver's set as it closes: a loop reader given the same number
    gets its events (uvloop would hang a client whose fd a stale watch of the driver's held),
    and a new upstream connection with that number is watched anew."""
    other = KeepAlive()

    async def test(client: UpstreamClient) -> None:
        readers = loop_readers(asyncio.get_running_loop())
        for url in (keep_alive.url, other.url):  # one idle connection kept: the first is closed
            ex, body = exchange(client)
            assert (await ex.send(get(url))) == Ended(200) and body == b"ok"
        here, there = socket.socketpair()  # the lowest free numbers: the closed one's among them
        woke = asyncio.Event()
        asyncio.get_running_loop().add_reader(here.fileno(), woke.set)
        there.send(b"x")
        await asyncio.wait_for(woke.wait(), 5)
        asyncio.get_running_loop().remove_reader(here.fileno())
        assert here.fileno() not in in_set(readers[1 if readers[0] == here.fileno() else 0])
        here.close()
        there.close()
        for url in (keep_alive.url, other.url, keep_alive.url):
            ex, body = exchange(client)
            assert (await asyncio.wait_for(ex.send(get(url)), 10)) == Ended(200) and body == b"ok"

    try:
        uvloop.run(with_client(test, limit=1))
    finally:
        other.stop()


def test_a_proxy_tunnels_answer_is_never_taken_for_the_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through an `https_proxy` from the environment (libcurl honours it), the proxy's own
    "200 Connection established" reached the header callback like a provider's head: a tunnel
    that then failed was ended as a 200 with no body instead of a transfer failure."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def proxy() -> None:  # answers one CONNECT, then drops the tunnel
        connection, _ = listener.accept()
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")

    async def test(client: UpstreamClient) -> None:
        tunnelled, body = exchange(client)
        ended = await tunnelled.send(Request("https://provider.invalid/v1/chat/completions", "POST",
                                             [], b"{}", 10_000, 5_000))
        assert ended.status == 0 and ended.error, (ended, bytes(body))

    try:
        run(test)
    finally:
        listener.close()
        thread.join(5)


def test_the_driver_knows_the_lone_socket_of_its_set_as_the_set_grows_and_shrinks() -> None:
    """With one socket in its set, the driver acts on it without asking the set which is ready
    (upstream/driver.py `_ready`): it must be the one socket the set holds, however the set came
    to hold it (a second socket added, an idle one kept, one taken out), and none otherwise."""

    def lone(driver: Driver) -> int:
        wanted = driver._wanted
        assert driver._lone == (next(iter(wanted)) if len(wanted) == 1 else -1), (driver._lone, wanted)
        return driver._lone

    async def test() -> None:
        driver = Driver(lambda *_: None, 4)
        driver.loop  # noqa: B018 - the loop the driver watches its set on
        pairs = [socket.socketpair() for _ in range(3)]
        a, b, c = (ours.fileno() for ours, _ in pairs)
        try:
            assert lone(driver) == -1
            driver._watch(pycurl.POLL_IN, a, driver._multi, None)
            assert lone(driver) == a
            driver._watch(pycurl.POLL_OUT, a, driver._multi, None)  # re-armed: still the one
            assert lone(driver) == a
            driver._watch(pycurl.POLL_IN, b, driver._multi, None)
            assert lone(driver) == -1
            driver._watch(pycurl.POLL_REMOVE, a, driver._multi, None)  # idle: kept in the set
            assert lone(driver) == -1
            driver._forget(a)
            assert lone(driver) == b
            driver._watch(pycurl.POLL_IN, c, driver._multi, None)
            driver._forget(b)
            assert lone(driver) == c
            pairs[2][1].send(b"x")  # ready: acted on as the lone socket (libcurl knows it not)
            driver._ready()
            driver._forget(c)
            assert lone(driver) == -1
        finally:
            driver.close()
            for ours, theirs in pairs:
                ours.close()
                theirs.close()
        assert lone(driver) == -1

    asyncio.run(test())
