"""The stage seam, in process: toy stages on chat routes, served through the gateway's own
router and HTTP/1.1 server (on pytest-tornado's IOLoop) against the real mock provider.

Each toy handler is the chat handler with other stages in its rules, as a new handler
would declare them; the compiler puts them into its routes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.ioloop import IOLoop

from converters.base import StreamConverter
from converters.usage import Usage
from dsl.compiler import compile_file
from handlers.chat import ChatHandler
from handlers.registry import HANDLERS
from runtime.process import Runtime
from server.app import TableRouter
from stages.stage import Call, Refusal, Stage
from tests.support import Mock
from upstream.attempt import Head, Sink, StandIn


class _Replace:
    """Replaces one word of the answer with another of the same length (a toy redaction)."""

    def feed(self, data: bytes) -> bytes:
        return data.replace(b"Hello", b"Howdy")

    def close(self) -> bytes:
        return b""


@dataclasses.dataclass(frozen=True, slots=True)
class Greeting(Stage):
    """Transforms every answer before it reaches the client."""

    def answer(self, call: Call) -> StreamConverter | None:
        return _Replace()


class Capture(StandIn):
    """A sink that keeps what an attempt relays, instead of the client."""

    def __init__(self, client: Sink) -> None:
        super().__init__(client)
        self.data = b""
        self.head: Head | None = None

    @property
    def committed(self) -> bool:
        return False

    @property
    def over(self) -> bool:
        return self.client.over

    def begin(self, head: Head) -> None:
        self.head = head  # the client's own status and headers stay untouched

    def send(self, data: bytes) -> None:
        self.data += data

    def end(self, body: bytes) -> None:
        self.data += body

    def end_stream(self, label: str, kind: str, message: str) -> None:
        self.client.end_stream(label, kind, message)


@dataclasses.dataclass(frozen=True, slots=True)
class Twice(Stage):
    """Runs the upstream once for itself, then again for the client (a tool loop's shape)."""

    seen: list[bytes] = dataclasses.field(default_factory=list)

    async def around(self, call: Call, run: Callable[[Any], Awaitable[Any]], sink: Any) -> Any:
        capture = Capture(sink)
        await run(capture)
        self.seen.append(capture.data)
        return await run(sink)


@dataclasses.dataclass(frozen=True, slots=True)
class Gatekeeper(Stage):
    """Refuses a request that says 'forbidden' before any upstream sees it; counts answers."""

    usage: list[Usage | None] = dataclasses.field(default_factory=list)

    def check(self, call: Call, document: dict[str, Any]) -> Refusal | None:
        said = orjson.dumps(document.get("messages"))
        return Refusal(403, "forbidden_word", "no, thank you") if b"forbidden" in said else None

    def done(self, call: Call, usage: Usage | None) -> None:
        self.usage.append(usage)


TWICE, GATEKEEPER = Twice(), Gatekeeper()


def chat_with(name: str, *stages: Stage) -> type[ChatHandler]:
    rules = dataclasses.replace(ChatHandler.rules, name=name, stages=stages)
    return type(f"{name.title()}Handler", (ChatHandler,), {"rules": rules})


TOY_HANDLERS = HANDLERS.adding(
    chat_with("greeting", Greeting()), chat_with("twice", TWICE), chat_with("gatekeeper", GATEKEEPER)
)


@pytest.fixture
def app(io_loop: IOLoop, tmp_path: Path, mock: Mock) -> Iterator[TableRouter]:
    """What pytest-tornado's http_server serves: the gateway's router, on this test's IOLoop."""
    path = tmp_path / "routes.yaml"
    path.write_text(f"""\
version: 1
providers:
  mock: {{url: "{mock.url}/v1", api_key: sk-stage-test}}
routes:
  - {{match: POST /greeting, handler: greeting, auth: none}}
  - {{match: POST /twice, handler: twice, auth: none}}
  - {{match: POST /gatekeeper, handler: gatekeeper, auth: none}}
""")
    table = compile_file(str(path), {}, handlers=TOY_HANDLERS.rules)
    runtime = Runtime.start(table.server)
    yield TableRouter(table, runtime, TOY_HANDLERS)
    runtime.upstream.close()


async def chat(client: AsyncHTTPClient, url: str, model: str, stream: bool, said: str = "hi") -> HTTPResponse:
    body = {"model": model, "messages": [{"role": "user", "content": said}], "stream": stream}
    return await client.fetch(url, method="POST", body=orjson.dumps(body), raise_error=False)


def streamed_text(body: bytes) -> str:
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: {")]
    return "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events)


@pytest.mark.gen_test
async def test_a_stage_transforms_a_buffered_answer(http_client: AsyncHTTPClient, base_url: str) -> None:
    response = await chat(http_client, f"{base_url}/greeting", "mock/gpt-greeting", stream=False)
    assert response.code == 200
    text = orjson.loads(response.body)["choices"][0]["message"]["content"]
    assert text.startswith("Howdy from mock gpt-greeting")


@pytest.mark.gen_test
async def test_a_stage_transforms_a_streamed_answer(http_client: AsyncHTTPClient, base_url: str) -> None:
    response = await chat(http_client, f"{base_url}/greeting", "mock/gpt-greeting", stream=True)
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert streamed_text(response.body).startswith("Howdy from mock gpt-greeting")
    assert response.body.rstrip().endswith(b"data: [DONE]")


@pytest.mark.gen_test
async def test_a_stage_runs_the_upstream_twice_and_reads_the_first_answer_itself(
    http_client: AsyncHTTPClient, base_url: str, mock: Mock
) -> None:
    TWICE.seen.clear()
    response = await chat(http_client, f"{base_url}/twice", "mock/gpt-twice", stream=True)
    assert response.code == 200
    assert streamed_text(response.body).startswith("Hello from mock gpt-twice")
    assert response.body.count(b"data: [DONE]") == 1  # the client got one answer
    [first] = TWICE.seen  # the first answer went to the stage, not the client
    assert streamed_text(first).startswith("Hello from mock gpt-twice")
    sent = [r for r in mock.requests() if "gpt-twice" in (r.get("body") or "")]
    assert len(sent) == 2


@pytest.mark.gen_test
async def test_a_stage_refuses_before_the_upstream_and_counts_answers(
    http_client: AsyncHTTPClient, base_url: str, mock: Mock
) -> None:
    GATEKEEPER.usage.clear()
    refused = await chat(http_client, f"{base_url}/gatekeeper", "mock/gpt-gate-no", False, "forbidden")
    assert refused.code == 403
    assert orjson.loads(refused.body)["error"]["code"] == "forbidden_word"
    assert not [r for r in mock.requests() if "gpt-gate-no" in (r.get("body") or "")]
    answered = await chat(http_client, f"{base_url}/gatekeeper", "mock/gpt-gate-yes", stream=False)
    assert answered.code == 200
    [usage] = GATEKEEPER.usage
    assert usage is not None and usage.output > 0
