"""The shared state for real: a redis-server and the state process, each hammered by two client
processes at once, and each taken away mid-run."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from converters.usage import Usage
from dsl.compiler import compile_file
from handlers.registry import HANDLERS
from limits.backend import Backend, Charge, Check, Correction
from limits.limiter import Limiter
from limits.redis_state import RedisBackend
from limits.state_client import StateClient
from limits.state_server import start_process
from tests.support import ROOT, RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


class StateProcess:
    """`python -m limits.state_server` on a socket in `directory`, as the supervisor starts it."""

    def __init__(self, directory: Path) -> None:
        self.socket = str(directory / "state.sock")
        self.start()

    def start(self) -> None:
        self.proc = start_process(self.socket, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0 and "Traceback" not in err, err


@pytest.fixture
def state_process(tmp_path: Path) -> Iterator[StateProcess]:
    process = StateProcess(tmp_path)
    yield process
    if process.proc.poll() is None:
        process.stop()


def hammered(tmp_path: Path, target: list[str], key: str, limit: int, requests: int, kind: str) -> int:
    """Admissions that passed, of `requests` fired at once by each of two processes."""
    go = tmp_path / f"go-{key}"
    clients = [
        subprocess.Popen([sys.executable, "-m", "tests.state.hammer", *target, "--key", key, "--kind", kind,
                          "--limit", str(limit), "--requests", str(requests), "--go", str(go)],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for client in clients:
        assert client.stdout is not None and client.stdout.readline() == "ready\n"
    go.touch()
    return sum(int(client.communicate(timeout=60)[0]) for client in clients)


@pytest.mark.parametrize("kind", ["count", "window"])
def test_redis_is_exact_across_two_processes(tmp_path: Path, redis_server: RedisServer, kind: str) -> None:
    assert hammered(tmp_path, ["--redis", redis_server.url], f"exact-redis-{kind}", 100, 200, kind) == 100


@pytest.mark.parametrize("kind", ["count", "window"])
def test_the_state_process_is_exact_across_two_processes(
    tmp_path: Path, state_process: StateProcess, kind: str
) -> None:
    assert hammered(tmp_path, ["--socket", state_process.socket], f"exact-state-{kind}", 100, 200, kind) == 100


def backends(redis_server: RedisServer, state_process: StateProcess) -> list[Backend]:
    return [RedisBackend(redis_server.url, 1.0), StateClient(state_process.socket, 1.0)]


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "state-process"])
def test_window_edges_corrections_and_leases(
    tmp_path: Path, redis_server: RedisServer, state_process: StateProcess, which: int
) -> None:
    backend = backends(redis_server, state_process)[which]
    name = f"edge-{which}-{time.monotonic_ns()}"

    async def scenario() -> None:
        rpm = [Check("count", f"{name}:rpm", 2, 0.5)]
        first = await backend.admit(rpm, "a")
        assert first.allowed and first.outcomes[0].used == 1 and first.outcomes[0].reset == 0.5
        await asyncio.sleep(0.2)
        assert (await backend.admit(rpm, "b")).allowed
        refused = await backend.admit(rpm, "c")
        assert not refused.allowed and refused.refused == 0 and 0 < refused.retry_after <= 0.3
        await asyncio.sleep(refused.retry_after + 0.01)  # the first entry has left, the second not yet
        again = await backend.admit(rpm, "d")
        assert again.allowed and again.outcomes[0].used == 2

        tpm = f"{name}:tpm"
        reserved = await backend.admit([Check("window", tpm, 1000, 0.6, 800)], "e")
        reserved_at = time.monotonic()
        assert not (await backend.admit([Check("window", tpm, 1000, 0.6, 300)], "f")).allowed
        await backend.settle([Correction(tpm, 0.6, reserved.at, -700)], [], [], "e.s")  # used 100
        await asyncio.sleep(0.3)
        corrected = await backend.admit([Check("window", tpm, 1000, 0.6, 300)], "g")
        assert corrected.allowed and corrected.outcomes[0].used == 400
        await asyncio.sleep(0.6 - (time.monotonic() - reserved_at) + 0.03)
        # the reservation and its correction left together: only the 300 remain
        assert (await backend.admit([Check("window", tpm, 1000, 0.6, 1)], "h")).outcomes[0].used == 301

        lease = [Check("concurrent", f"{name}:c", 1, 0.3)]
        assert (await backend.admit(lease, "i")).allowed
        assert not (await backend.admit(lease, "j")).allowed
        await backend.settle([], [(f"{name}:c", "i")], [], "i.s")
        assert (await backend.admit(lease, "k")).allowed
        await asyncio.sleep(0.31)  # "k" is never released, as when its worker died
        assert (await backend.admit(lease, "l")).allowed

        spend = f"{name}:spend"
        await backend.settle([], [], [Charge(spend, 7, time.time() + 60)], "m")
        await backend.settle([], [], [Charge(spend, 5, time.time() + 60)], "n")
        assert await backend.spent([spend, f"{name}:none"]) == [12, 0]
        assert not (await backend.admit([Check("budget", spend, 12)], "o")).allowed
        await backend.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "state-process"])
def test_open_breakers_keep_the_latest_time_and_forget_those_past_it(
    redis_server: RedisServer, state_process: StateProcess, which: int
) -> None:
    backend = backends(redis_server, state_process)[which]
    name = f"p{which}-{time.monotonic_ns()}"

    async def mine() -> dict[str, tuple[float, str]]:
        return {target: (until, reason) for target, until, reason in await backend.open_breakers()
                if target.startswith(name)}

    async def scenario() -> None:
        now = time.time()
        await backend.open_breaker(f"{name}/m", now + 60.5, "failures")
        await backend.open_breaker(f"{name}/m", now + 5, "rate_limited")  # sooner: the later time stays
        await backend.open_breaker(f"{name}/*", now + 600, "key_refused")
        await backend.open_breaker(f"{name}/soon", now + 0.2, "probe_failed")
        assert await mine() == {f"{name}/m": (pytest.approx(now + 60.5, abs=0.001), "failures"),
                                f"{name}/*": (pytest.approx(now + 600, abs=0.001), "key_refused"),
                                f"{name}/soon": (pytest.approx(now + 0.2, abs=0.001), "probe_failed")}
        await asyncio.sleep(0.25)
        assert set(await mine()) == {f"{name}/m", f"{name}/*"}
        await backend.open_breaker(f"{name}/m", now + 120, "probe_failed")
        assert (await mine())[f"{name}/m"] == (pytest.approx(now + 120, abs=0.001), "probe_failed")
        await backend.close()

    asyncio.run(scenario())


def test_redis_loads_its_scripts_again_after_a_flush(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        backend = RedisBackend(redis_server.url, 1.0)
        assert (await backend.admit([Check("window", "flush", 5, 60, 1)], "a")).allowed
        redis.Redis.from_url(redis_server.url).script_flush()
        assert (await backend.admit([Check("window", "flush", 5, 60, 1)], "b")).outcomes[0].used == 2
        await backend.close()

    asyncio.run(scenario())


ROUTES = """\
version: 1
providers: {{mock: {{url: "http://127.0.0.1:1/v1"}}}}
state: {{url: "{url}", timeout: {timeout}, on_state_error: {policy}}}
limits: {{keys: {{rpm: 1000, tpm: 100000}}}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
"""


def limiter(tmp_path: Path, url: str, policy: str, socket: str | None = None, timeout: str = "2s") -> Limiter:
    """A Limiter over `url`; the timeout is long, so that only an outage fails a request."""
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(url=url, policy=policy, timeout=timeout))
    limits = Limiter(socket)
    limits.configure(compile_file(str(path), {}, handlers=HANDLERS.rules))
    return limits


async def until_state_answers(limits: Limiter, key: str) -> None:
    for _ in range(200):
        decision = await limits.admit_request(key, None, 10)
        if decision.headers:  # counted in the state again
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the state was not used again")


def test_redis_killed_mid_run_then_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer()
    caplog.set_level(logging.INFO, "gateway.limits")
    try:
        limits = limiter(tmp_path, server.url, "deny")

        async def scenario() -> None:
            ticket = (await limits.admit_request("admin", None, 50)).ticket
            server.stop()
            for _ in range(5):
                denied = await asyncio.wait_for(limits.admit_request("admin", None, 50), 2)
                assert not denied.allowed and denied.refused.kind == "state"
                assert denied.response_headers()["Retry-After"] == "1"
                await asyncio.sleep(0.2)
            await asyncio.wait_for(limits.finish(ticket, Usage(input=1, output=1, reported=True)), 2)
            server.start()
            await until_state_answers(limits, "admin")
            await limits.close()

        asyncio.run(scenario())
    finally:
        server.stop()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage() and "deny" in errors[0].getMessage()
    assert len([r for r in caplog.records if "answers again" in r.getMessage()]) == 1


def test_redis_that_does_not_answer_is_timed_out_and_allowed(tmp_path: Path, redis_server: RedisServer) -> None:
    limits = limiter(tmp_path, redis_server.url, "allow", timeout="100ms")

    async def scenario() -> None:
        await until_state_answers(limits, "paused")
        redis.Redis.from_url(redis_server.url).execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.monotonic()
        allowed = await asyncio.wait_for(limits.admit_request("paused", None, 1), 1.0)
        assert allowed.allowed and not allowed.headers and time.monotonic() - started < 1.0
        await asyncio.sleep(1.6)
        await until_state_answers(limits, "paused")
        await limits.close()

    asyncio.run(scenario())


def test_state_process_killed_mid_run_then_back(tmp_path: Path, state_process: StateProcess) -> None:
    limits = limiter(tmp_path, "memory", "deny", socket=state_process.socket)

    async def scenario() -> None:
        assert (await limits.admit_request("admin", None, 1)).headers
        state_process.proc.kill()
        state_process.proc.wait()
        await asyncio.sleep(0.1)
        denied = await asyncio.wait_for(limits.admit_request("admin", None, 1), 2)
        assert not denied.allowed and denied.refused.kind == "state"
        state_process.start()
        await until_state_answers(limits, "admin")
        await limits.close()

    asyncio.run(scenario())


def test_limiter_over_redis_corrects_tokens_and_charges_budgets(tmp_path: Path, redis_server: RedisServer) -> None:
    (tmp_path / "secrets.yaml").write_text(
        "client_token: a-client-token-of-some-length\napi_keys:\n  spender:\n"
        "    token: a-spender-token-of-some-length\n    budget: {usd: 0.01, per: month}\n")
    (tmp_path / "routes.yaml").write_text(
        f"version: 1\nsecrets: secrets.yaml\nstate: {redis_server.url}\n"
        "providers: {mock: {url: 'http://127.0.0.1:1/v1'}}\n"
        "models: {m: {price: {input: 1000, output: 1000}}}\n"
        "limits: {keys: {tpm: 10000}}\n"
        "routes: [{match: POST /v1/chat/completions, handler: chat}]\n")
    limits = Limiter()
    limits.configure(compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules))

    async def scenario() -> None:
        first = await limits.admit_request("spender", None, 4000)
        assert first.headers["x-ratelimit-remaining-tokens"] == "6000"
        await limits.admit_target(first.ticket, "mock", "m")
        await limits.finish(first.ticket, Usage(input=6, output=4, reported=True))  # $0.01
        assert (await limits.spend())["spender"]["usd"] == 0.01
        over = await limits.admit_request("spender", None, 1)
        assert not over.allowed and over.refused.kind == "budget"
        assert over.headers["x-ratelimit-remaining-tokens"] == str(10000 - 10)
        await limits.close()

    asyncio.run(scenario())


def test_a_redis_restart_between_requests_costs_no_request(tmp_path: Path) -> None:
    server = RedisServer()
    try:
        limits = limiter(tmp_path, server.url, "deny")

        async def burst() -> list[bool]:
            decisions = await asyncio.gather(*(limits.admit_request("admin", None, 1) for _ in range(10)))
            return [decision.allowed for decision in decisions]

        async def scenario() -> None:
            assert await burst() == [True] * 10  # the pool now holds connections...
            server.stop()
            server.start()  # ...that this restart left stale
            assert await burst() == [True] * 10
            await limits.close()

        asyncio.run(scenario())
    finally:
        server.stop()


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x03[1]", b"\x00\x00\x00\x02{}",
                                     b"\x00\x00\x00\x0b[\"admit\",1]", b"\x00\x00\x00\x04nope"])
def test_the_state_process_drops_a_bad_client_and_serves_on(state_process: StateProcess, garbage: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as bad:
        bad.settimeout(5)
        bad.connect(state_process.socket)
        bad.sendall(garbage)
        assert bad.recv(100) == b""  # closed on it

    async def scenario() -> None:
        client = StateClient(state_process.socket, 2.0)
        assert (await client.admit([Check("window", "after-garbage", 5, 60, 1)], "a")).allowed
        await client.close()

    asyncio.run(scenario())
    state_process.stop()
