"""server.workers: 2 — a supervisor and two forked workers sharing the listener, as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import STANDARD_SECRETS, standard_gateway, standard_routes
from tests.support import Gateway, Mock, write_config

MESSAGES = [{"role": "user", "content": "hi there"}]
CHAT = json.dumps({"model": "fast", "messages": MESSAGES}).encode()
FAST_200 = re.compile(
    r'^gateway_requests_total\{model="fast",route="POST /v1/chat/completions",status="200"\} (\S+)$', re.M
)


def _wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _children(pid: int, state: bool = False) -> set[int]:
    """The living processes whose parent is `pid`: the supervisor's workers (or its state process)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) == pid and fields[0] != "Z" and (b"limits.state_server" in command) == state:
                found.add(int(entry.name))
    return found


def _chat(gateway: Gateway) -> tuple[int, str]:
    """One chat request for agent `fast` on a new connection (so the kernel may hand it to either worker)."""
    status, _, body = gateway.request("POST", "/v1/chat/completions", CHAT)
    content = json.loads(body)["choices"][0]["message"]["content"] if status == 200 else body.decode()
    return status, content


def _fast_answered(gateway: Gateway) -> float:
    found = FAST_200.search(gateway.metrics())
    return float(found.group(1)) if found else 0.0


def _statsz(gateway: Gateway) -> dict:
    return json.loads(gateway.get("/statsz")[2])


def _in_parallel(count: int, threads: int, work: Callable[[], tuple[int, str]]) -> list[tuple[int, str]]:
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    todo = iter(range(count))

    def run() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            result = work()
            with lock:
                results.append(result)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def workers_gateway(mock: Mock, directory: Path, env: dict[str, str] | None = None) -> Gateway:
    """The standard routes served by two workers; returns once both serve (Gateway.wait_ready)."""
    gateway = standard_gateway(mock, directory, server="  workers: 2\n", env=env)
    assert "all 2 workers serving" in gateway.log()
    return gateway


@pytest.fixture
def workers(mock: Mock, tmp_path: Path) -> Iterator[Gateway]:
    gateway = workers_gateway(mock, tmp_path)
    yield gateway
    assert gateway.stop() == 0, gateway.log()
    assert "Traceback" not in gateway.log(), gateway.log()


def test_every_scrape_counts_every_worker(workers: Gateway) -> None:
    assert len(_children(workers.proc.pid)) == 2
    results = _in_parallel(100, 4, lambda: _chat(workers))
    assert [status for status, _ in results] == [200] * 100
    # A request is counted just after its answer is written: a scrape served by the other worker
    # at that instant may miss the last one. Once seen, every scrape, on either worker, shows all.
    assert _wait_for(lambda: _fast_answered(workers) == 100)
    for _ in range(10):
        assert _fast_answered(workers) == 100
    # Another worker's counters reach /statsz within a second (its file): wait for one whole snapshot.
    assert _wait_for(lambda: _statsz(workers)["keys"].get("admin", {}).get("requests") == 100)
    stats = _statsz(workers)
    while stats["keys"]["admin"]["requests"] != 100:
        stats = _statsz(workers)
    assert stats["models"]["fast"]["requests"] == 100
    spread = {worker["pid"]: worker["requests"] for worker in stats["workers"]}
    assert set(spread) == _children(workers.proc.pid)
    assert all(served > 0 for served in spread.values()), spread  # both workers took requests
    assert "gateway_requests_in_flight 1.0" in workers.metrics()  # the scrape itself, in either worker


def test_a_killed_worker_is_replaced_and_counters_stay(workers: Gateway) -> None:
    assert [_chat(workers)[0] for _ in range(20)] == [200] * 20
    assert _wait_for(lambda: _fast_answered(workers) == 20)
    victim, survivor = sorted(_children(workers.proc.pid))
    # Another worker's /statsz has the victim's counters once its file is written (each second): a
    # SIGKILL loses at most that. Wait until the survivor's /statsz has all of them.
    # (No "fast" at all while the survivor answered none of them and the victim's file is not written.)
    assert _wait_for(lambda: (s := _statsz(workers))["pid"] == survivor
                     and s["models"].get("fast", {}).get("requests") == 20)
    os.kill(victim, signal.SIGKILL)
    assert _wait_for(lambda: "was killed by SIGKILL; replacing it" in workers.log())
    seen = []
    for _ in range(20):  # the instance keeps answering meanwhile, and its count never goes down
        assert _chat(workers)[0] == 200
        seen.append(_fast_answered(workers))
    assert seen == sorted(seen) and seen[0] >= 20, seen
    assert _wait_for(lambda: len(_children(workers.proc.pid) - {survivor}) == 1)
    replacement = (_children(workers.proc.pid) - {survivor}).pop()
    assert replacement != victim
    assert _wait_for(lambda: any(w["pid"] == replacement for w in _statsz(workers)["workers"]))
    assert [_chat(workers)[0] for _ in range(20)] == [200] * 20
    assert _wait_for(lambda: _fast_answered(workers) == 60)  # the dead worker's count is kept
    assert _fast_answered(workers) == 60
    assert _wait_for(lambda: _statsz(workers)["models"]["fast"]["requests"] == 60)
    assert victim not in {w["pid"] for w in _statsz(workers)["workers"]}


def test_sighup_under_load_reloads_every_worker_without_a_failed_request(workers: Gateway) -> None:
    stop = threading.Event()
    answers: list[tuple[float, int, str]] = []  # when each request started, its status and text

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            answers.append((started, *_chat(workers)))

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    assert _wait_for(lambda: len(answers) > 20)
    workers.config.write_text(
        workers.config.read_text().replace("fast: {models: [mock/gpt-4o-mini]}", "fast: {models: [mock/gpt-4o]}")
        .replace("workers: 2", "workers: 3")  # takes a restart: the reload says so and keeps two
    )
    workers.signal(signal.SIGHUP)
    assert _wait_for(lambda: "reloaded from" in workers.log() and "by every worker" in workers.log())
    reloaded = time.monotonic()  # every worker has swapped: a request started now meets the new table
    reloaded_at = len(answers)
    assert _wait_for(lambda: len(answers) > reloaded_at + 20)
    stop.set()
    for client in clients:
        client.join()
    assert {status for _, status, _ in answers} == {200}, [a for a in answers if a[1] != 200][:3]
    after = [content for started, _, content in answers if started > reloaded]
    assert len(after) >= 20
    assert all(content.startswith("Hello from mock gpt-4o!") for content in after)
    for pid in _children(workers.proc.pid):
        assert f"pid {pid}] configuration reloaded from" in workers.log()
    assert "server.workers: changed in the file, but take effect only on restart" in workers.log()
    # And each worker answers with the new table: their counts before and after 60 more requests.
    served_before = _served(workers, len(answers))
    more = _in_parallel(60, 4, lambda: _chat(workers))
    assert all(status == 200 and content.startswith("Hello from mock gpt-4o!") for status, content in more)
    served_after = _served(workers, len(answers) + 60)
    assert all(served_after[pid] > served_before[pid] for pid in served_before), (served_before, served_after)
    assert 'gateway_config_reloads_total{result="success"} 1.0' in workers.metrics()
    assert len(_children(workers.proc.pid)) == 2


def _served(gateway: Gateway, total: int) -> dict[int, int]:
    """Requests each worker served, from a /statsz that has them all (so its sibling's file is current)."""
    found: dict[int, int] = {}

    def complete() -> bool:
        stats = _statsz(gateway)
        found.update({w["pid"]: w["requests"] for w in stats["workers"]})
        return stats["models"]["fast"]["requests"] == total

    assert _wait_for(complete)
    return found


def test_a_broken_file_reloads_no_worker(workers: Gateway) -> None:
    good = workers.config.read_text()
    workers.config.write_text(
        good.replace("fast: {models: [mock/gpt-4o-mini]}", "fast: {models: [mock/gpt-4o]}")
        .replace("handler: chat\n", "handler: chatt\n", 1)
    )
    workers.signal(signal.SIGHUP)
    assert _wait_for(lambda: "reload rejected" in workers.log())
    assert "routes[0].handler" in workers.log()
    assert workers.log().count("reload rejected") == 1  # the supervisor's compile; no worker tried
    answers = _in_parallel(20, 4, lambda: _chat(workers))
    assert all(content.startswith("Hello from mock gpt-4o-mini!") for _, content in answers)
    assert 'gateway_config_reloads_total{result="failure"} 1.0' in workers.metrics()
    assert "configuration reloaded" not in workers.log()


def test_sigterm_drains_every_worker(workers: Gateway) -> None:
    streams = [
        workers.openai().chat.completions.create(model="mock/gpt-delay-100", messages=MESSAGES, stream=True)
        for _ in range(4)
    ]
    firsts = [next(iter(stream)) for stream in streams]
    workers.signal(signal.SIGTERM)
    assert _wait_for(lambda: "draining 2 workers" in workers.log())
    assert _wait_for(lambda: _refused(workers.port))
    for stream, first in zip(streams, firsts, strict=True):
        chunks = [first, *stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello from mock gpt-delay-100! You said: hi there"
    assert workers.proc.wait(15) == 0
    assert workers.log().count(") stopped") == 2


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_only_the_supervisor_talks_to_systemd(mock: Mock, tmp_path: Path) -> None:
    """READY=1 once both workers serve; RELOADING=1 and READY=1 around a reload; STOPPING=1;
    watchdog pings; every datagram from the supervisor's pid (the kernel's credentials say who
    sent it)."""
    directory = tempfile.mkdtemp(prefix="sd-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(10)
    gateway = workers_gateway(mock, tmp_path, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"})
    senders: set[int] = set()

    def until(field: str) -> dict[str, str]:
        while True:
            data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    senders.add(int.from_bytes(value[:4], "little"))
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            if field in fields:
                return fields

    try:
        assert until("WATCHDOG")["WATCHDOG"] == "1"  # pinged from the supervisor's loop
        ready = until("READY")
        assert "2 of 2 workers" in ready["STATUS"]
        assert "all 2 workers serving" in gateway.log()
        gateway.signal(signal.SIGHUP)
        assert until("RELOADING")["RELOADING"] == "1"
        assert until("READY")["READY"] == "1"
        assert "by every worker" in gateway.log()
        gateway.signal(signal.SIGTERM)
        assert until("STOPPING")["STOPPING"] == "1"
        assert gateway.proc.wait(15) == 0
        assert senders == {gateway.proc.pid}
    finally:
        gateway.stop()
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


def test_a_stuck_worker_is_killed_and_replaced(mock: Mock, tmp_path: Path) -> None:
    """With systemd's watchdog on, the supervisor pings it and expects the same of each worker."""
    gateway = workers_gateway(mock, tmp_path, env={"WATCHDOG_USEC": "2000000"})
    try:
        stuck, other = sorted(_children(gateway.proc.pid))
        os.kill(stuck, signal.SIGSTOP)  # its event loop says nothing more
        assert _wait_for(lambda: f"(pid {stuck}) silent for 2s: killed" in gateway.log())
        assert _wait_for(lambda: len(_children(gateway.proc.pid) - {other}) == 1)
        assert stuck not in _children(gateway.proc.pid)
        assert [_chat(gateway)[0] for _ in range(10)] == [200] * 10
        assert other in _children(gateway.proc.pid)  # the live one was left alone
    finally:
        assert gateway.stop() == 0, gateway.log()


def test_the_workers_files_live_in_the_runtime_directory(mock: Mock, tmp_path: Path) -> None:
    """$RUNTIME_DIRECTORY (systemd's RuntimeDirectory=): workers/ in it, wiped at start, removed at stop."""
    runtime = tmp_path / "run"
    leftovers = runtime / "workers" / "metrics"
    leftovers.mkdir(parents=True)
    (leftovers / "counter_1.db").write_bytes(b"a crashed run's file")  # unreadable, were it merged
    gateway = workers_gateway(mock, tmp_path / "config", env={"RUNTIME_DIRECTORY": str(runtime)})
    try:
        assert not (leftovers / "counter_1.db").exists()
        assert _chat(gateway)[0] == 200
        assert _wait_for(lambda: _fast_answered(gateway) == 1)
        assert {path.name.split("_")[0] for path in leftovers.iterdir()} >= {"counter", "histogram", "gauge"}
        assert _wait_for(lambda: len(list((runtime / "workers" / "statsz").glob("*.json"))) == 2)
    finally:
        assert gateway.stop() == 0, gateway.log()
    assert not (runtime / "workers").exists()
    assert runtime.is_dir()  # systemd's own: left to it


def test_workers_of_a_killed_supervisor_drain_and_exit(mock: Mock, tmp_path: Path) -> None:
    runtime = tmp_path / "run"  # what a SIGKILL leaves behind stays in the test's own directory
    runtime.mkdir()
    gateway = workers_gateway(mock, tmp_path / "config", env={"RUNTIME_DIRECTORY": str(runtime)})
    try:
        workers = _children(gateway.proc.pid)
        state = _children(gateway.proc.pid, state=True)  # left to systemd's cgroup kill; here to us
        stream = gateway.openai().chat.completions.create(model="mock/gpt-delay-100", messages=MESSAGES, stream=True)
        chunks = iter(stream)
        first = next(chunks)
        gateway.proc.kill()
        gateway.proc.wait()
        text = "".join(c.choices[0].delta.content or "" for c in [first, *chunks] if c.choices)
        assert text == "Hello from mock gpt-delay-100! You said: hi there"  # drained, not cut
        assert _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
        assert _refused(gateway.port)
        assert gateway.log().count("the supervisor is gone: draining") == 2
    finally:
        gateway.stop()
        for pid in state:
            os.kill(pid, signal.SIGTERM)


def test_one_worker_is_one_process(gateway: Gateway) -> None:
    """server.workers: 1 (the session gateway): no supervisor, no per-process metric files."""
    assert _children(gateway.proc.pid) == set()
    stats = _statsz(gateway)
    assert "workers" not in stats and "pid" not in stats
    assert "PROMETHEUS_MULTIPROC_DIR" not in Path(f"/proc/{gateway.proc.pid}/environ").read_text()


def test_workers_count_limits_in_the_supervisors_state_process(mock: Mock, tmp_path: Path) -> None:
    """`state: memory` with two workers: both ask the one state process the supervisor started (here
    for a budget's spend), which is restarted when it dies and stopped with the supervisor."""
    secrets = STANDARD_SECRETS + "api_keys:\n  spender: {token: spender-token-0123456789, budget: {usd: 1, per: day}}\n"
    gateway = Gateway(write_config(tmp_path, standard_routes("  workers: 2\n"), secrets), env={"MOCK_URL": mock.url})

    def every_worker_reaches_the_state() -> bool:
        seen = {}
        for _ in range(20):
            stats = _statsz(gateway)
            limits = stats["limits"]
            seen[stats["pid"]] = (limits["state"].startswith("memory (state process ")
                                  and limits["budgets"]["spender"]["usd"] == 0.0)
        return len(seen) == 2 and all(seen.values())

    try:
        state = _children(gateway.proc.pid, state=True)
        assert len(state) == 1 and len(_children(gateway.proc.pid)) == 2
        assert _wait_for(every_worker_reaches_the_state)
        os.kill(state.pop(), signal.SIGKILL)
        assert _wait_for(lambda: "was killed by SIGKILL; restarting it" in gateway.log())
        assert _wait_for(lambda: len(_children(gateway.proc.pid, state=True)) == 1)
        assert _wait_for(every_worker_reaches_the_state)
        (restarted,) = _children(gateway.proc.pid, state=True)
    finally:
        assert gateway.stop() == 0, gateway.log()
    assert not Path(f"/proc/{restarted}").exists()  # stopped (and reaped) by the supervisor


def test_memory_limits_are_exact_across_workers(mock: Mock, tmp_path: Path) -> None:
    """A key limited to 30 requests a minute gets exactly 30 answers from two workers (each counting
    apart would admit up to 30 each), and the refusals carry OpenAI's headers."""
    routes = standard_routes("  workers: 2\n") + "limits: {keys: {rpm: 30}}\n"
    gateway = Gateway(write_config(tmp_path, routes, STANDARD_SECRETS), env={"MOCK_URL": mock.url})
    answers: list[tuple[int, dict[str, str]]] = []

    def chat() -> tuple[int, str]:
        status, headers, _ = gateway.request("POST", "/v1/chat/completions", CHAT)
        answers.append((status, headers))
        return status, ""

    try:
        _in_parallel(80, 4, chat)
        statuses = [status for status, _ in answers]
        assert statuses.count(200) == 30 and statuses.count(429) == 50, statuses
        refused = next(headers for status, headers in answers if status == 429)
        assert refused["x-ratelimit-limit-requests"] == "30" and int(refused["retry-after"]) > 0
        served = _served(gateway, 80)  # every request reached a worker (refusals are answers too)
        assert len(served) == 2 and all(n > 0 for n in served.values()), served
    finally:
        assert gateway.stop() == 0, gateway.log()


def test_metrics_count_every_request_of_every_worker_exactly(mock: Mock, tmp_path: Path) -> None:
    """Each worker writes its requests' metrics to its file in the loop pass after the one that
    answered them (ops/published_metrics.py), unasked: read straight from the files (a scrape
    would first write its own worker's), N requests spread over both workers are exactly N more
    in the counter, in every histogram's count and +Inf bucket, and every token the answers
    reported; and /metrics, on either worker, says the same."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    gateway = workers_gateway(mock, tmp_path / "config", env={"RUNTIME_DIRECTORY": str(runtime)})
    route = 'route="POST /v1/chat/completions"'
    wanted = {
        "answered": f'gateway_requests_total{{model="fast",{route},status="200"}}',
        "durations": f"gateway_request_duration_seconds_count{{{route}}}",
        "durations_inf": f'gateway_request_duration_seconds_bucket{{le="+Inf",{route}}}',
        "first_bytes": f"gateway_time_to_first_byte_seconds_count{{{route}}}",
        "upstream": 'gateway_upstream_duration_seconds_count{provider="mock"}',
        "input": 'gateway_tokens_total{kind="input",model="fast"}',
        "output": 'gateway_tokens_total{kind="output",model="fast"}',
    }

    def counts(text: str) -> dict[str, float]:
        found = {name: float(m.group(1)) if (m := re.search(f"^{re.escape(series)} (\\S+)$", text, re.M)) else 0.0
                 for name, series in wanted.items()}
        for kind in ("input", "output"):  # by API key name: the same tokens
            found["key_" + kind] = sum(
                float(value) for value in re.findall(f'^gateway_key_tokens_total{{key="[^"]*",kind="{kind}"}} (\\S+)$',
                                                     text, re.M))
        return found

    def in_files() -> dict[str, float]:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(runtime / "workers" / "metrics"))
        return counts(generate_latest(registry).decode())

    def usage() -> tuple[int, str]:
        status, _, body = gateway.request("POST", "/v1/chat/completions", CHAT)
        reported = json.loads(body)["usage"] if status == 200 else {}
        return status, f"{reported.get('prompt_tokens')} {reported.get('completion_tokens')}"

    try:
        results = _in_parallel(60, 6, usage)
        assert [status for status, _ in results] == [200] * 60
        tokens = [tuple(map(int, reported.split())) for _, reported in results]
        expected = dict.fromkeys(("answered", "durations", "durations_inf", "first_bytes", "upstream"), 60.0)
        expected["input"] = expected["key_input"] = float(sum(sent for sent, _ in tokens))
        expected["output"] = expected["key_output"] = float(sum(received for _, received in tokens))
        # The last answer's pass may still be running as it arrives: wait for it.
        assert _wait_for(lambda: in_files() == expected), (in_files(), expected)
        for _ in range(5):
            assert counts(gateway.metrics()) == expected
        # Both workers served some (their /statsz files are written each second).
        assert _wait_for(lambda: [w["requests"] > 0 for w in _statsz(gateway)["workers"]] == [True, True])
    finally:
        assert gateway.stop() == 0, gateway.log()
    assert "Traceback" not in gateway.log(), gateway.log()
