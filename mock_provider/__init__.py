"""Mock LLM provider speaking the OpenAI and Anthropic wire formats.

The gateway's tests, demo and benchmark need an upstream that is real HTTP
(so pycurl, chunked streaming and disconnects are exercised for real) yet
deterministic and cheap.  This package is that upstream:

    python -m mock_provider --port 9001 [--host 127.0.0.1] [--delay-ms 0] [--no-log]

prints ``mock provider listening on HOST:PORT`` once listening (``--port 0``
picks a free port).  ``make_app()`` builds the same Tornado application for
in-process use.

Behaviour is chosen from ``-``-separated tokens in the request's model name
(the gateway rewrites model names, so a test picks behaviour by routing to a
model), e.g. ``gpt-delay-50-tools``:

* ``delay-<ms>``  sleep between stream events (once before a non-stream reply);
  else header ``x-mock-delay-ms``; else ``--delay-ms``.
* ``tools``       two parallel tool calls; ``thinking`` (Anthropic) a thinking block.
* ``big-<KiB>``   the reply text is that many KiB (at most 512 MiB) of ``filler_text``, sent in
  pieces of ``piece-<KiB>`` (default 16; one stream event per piece), for tests of large answers;
  with ``leadbytes`` the text's first two characters come first, an event each (an answer
  that is under way before its large events come).
* ``fault-<status>`` (400..599, e.g. 429 with ``Retry-After: 1``; 401 quotes the key it
  was sent, split across body chunks), ``fault-hang``,
  ``fault-cut``, ``fault-empty``, ``fault-slowheaders``, ``fault-streamerror``;
  ``fault-cutend`` streams the whole reply, then drops the connection before the events
  that end it (finish_reason, ``[DONE]``; ``content_block_stop``, ``message_stop``).
  An OpenAI ``fault-400`` is a context-length refusal (``code: context_length_exceeded``,
  ``param: messages``); an Anthropic ``fault-402`` is a ``billing_error``.
* ``cache``       a prompt cache: a chat answer's usage reports the tokens of the longest
  prefix of its prompt (model, system, first messages) that an earlier request sent whole, as
  cached (``cached_tokens``, Anthropic ``cache_read_input_tokens``).
* ``badusage``    a chat answer's usage counts are ones no provider should send (negative,
  text, past 2**53, a string where details belong), for the gateway's tolerance of them.
* ``echokey``     a chat fault's error message quotes the request's API key, as some
  providers' do: what a gateway must never pass on.
* ``echosystem``  the reply quotes the system prompt instead of the last user message (with
  ``tools``: one tool call whose arguments are ``{"note": <system prompt>}``), so that a test
  can make the upstream answer with a secret the gateway did not redact in the request.

``/v1/messages`` refuses (400, as Anthropic does) thinking enabled while the final
assistant turn calls tools without opening with its thinking block. A structured-output
request (``output_config.format`` / ``response_format`` json_schema) is answered with a
small JSON value that its schema accepts.

Besides ``/v1/chat/completions``, ``/v1/messages`` and ``/v1/models`` it serves the
OpenAI extension endpoints so each can be tested end to end through the gateway:
``/v1/embeddings``, ``/v1/images/generations``, ``/v1/audio/{transcriptions,translations,
speech}``, ``/v1/moderations``, ``/v1/rerank`` (Cohere/Jina shape), ``/v1/responses[/{id}]``,
``/v1/a2a`` (JSON-RPC echo), ``/v1/files[/{id}[/content]]``, ``/v1/batches[/{id}[/cancel]]``
and ``/v1/models/{id}``.  Files, batches and responses live in memory.  The model-name
selectors above apply to every endpoint whose request has a ``model`` (JSON or form field).
Every ``/v1`` answer carries ``x-request-id: req_mock_<n>`` and ``Set-Cookie: mock_session=1``;
with request header ``x-mock-hop-header: <name>``, also ``<name>: 1`` named in its ``Connection``
header (a hop-by-hop header a proxy must not relay).

Control API: ``GET|DELETE /_mock/requests``, ``GET /_mock/health``, ``GET|POST|DELETE
/_mock/config`` (``{"models_fault": "500"|"hang"|"slow-<ms>"|null, "models": [ids]|null}``),
and ``GET|POST|DELETE /_mock/faults``: per-model fault scripts, so a test makes one model fail
and recover without renaming it or sleeping. Each POST replaces that model's script:

* ``{"model": m, "fail": N, "status": 503, "retry_after": "2"}``: the next N requests for ``m``
  get ``status`` (default 503) with an error body in the endpoint's shape (OpenAI, or Anthropic
  on ``/v1/messages``) and ``Retry-After`` exactly as given (seconds or an HTTP date; none when
  omitted); ``"fail": true`` until cleared.
* ``{"model": m, "first_byte_delay_ms": 500, "times": N}``: wait before the first byte (headers
  included) of the next N answers, streamed or not; without ``times`` until cleared.
* ``{"model": m, "stream": "error" | "empty" | "stall", "times": N}``: the next N streamed
  completions answer 200 and send their first event, then an error event (``error``) or nothing
  (``empty``); ``stall`` sends every event but those that end the stream, then nothing until
  the client goes away (an upstream that stops mid-answer without closing).
* ``{"model": m, "refuse": true, "times": N}``: close the connection after reading the request,
  answering nothing (the closest a listening server gets to refusing one model's connections;
  clients see "empty reply" / "server disconnected", and curl may resend once on a fresh
  connection when the dropped one was reused, which counts as another request).
* ``{"model": m, "tool_calls": [{"name": "srv__echo", "arguments": {"text": "hi"}}], "times": N,
  "after_result": "quote"}``: a chat answer (OpenAI or Anthropic, streamed or not) that calls these
  tools, in parallel, with these arguments; a request that ends with tool results (the trailing
  ``tool`` messages, or the last user turn's ``tool_result`` blocks) is answered instead with text
  quoting them, ``Tool result: <text>`` (several joined by `` | ``), and so is one that offers no
  tool or says ``tool_choice`` none; with ``"after_result": "call"`` the calls are made again
  whatever the request ends with (a model that never stops calling), with ``"fail"`` a request
  ending with tool results is answered 503 (a model that breaks after its tools ran; it spends
  nothing); with ``"say": "<text>"`` the calling answer opens with that text. ``times`` counts the answers
  that call; a quoting answer spends none. Other endpoints ignore such a script.
* ``{"model": m, "recover": true}``: drop ``m``'s script. ``DELETE`` drops every script and count.

A script runs before the model-name selectors, on every endpoint whose request names a model
(JSON or form field, or the ``/v1/models/{id}`` path). ``GET`` (and every answer) shows
``{"scripts": {m: {"kind", "remaining", ...}}, "seen": {m: requests received}}``; ``seen``
counts every request naming ``m``, scripted or not, so a test can assert that no request reached
the upstream. The request log entry of a scripted request says what was applied:
``"script": {"fail": 503, "retry_after": "2"} | {"first_byte_delay_ms": 500.0} | {"refuse": true}
| {"tool_calls": <calls made, 0 when it quoted>}``.
``tests/support.py``'s ``Mock`` wraps this: ``script_fault(m, **script)``, ``clear_faults()``,
``faults()``, ``seen(m)``.

Modules, each importing only those listed before it: ``behaviour`` (the selectors), ``plan``
(the answer, format aside), ``wire/`` (the answer in each API's format), ``request_log``,
``scripting`` (the ``/_mock/faults`` scripts and counts) and ``state`` (what one application
remembers), ``handler`` (the endpoint base) and ``faults`` (the selectors and scripts played on
the wire), ``endpoints/``, ``control`` (``/_mock``), ``app`` (the route table), ``cli``. The
tests are in ``tests/``.
"""

from mock_provider.app import make_app, make_server
from mock_provider.behaviour import Behaviour, parse_model
from mock_provider.cli import main
from mock_provider.endpoints.audio import speech_bytes
from mock_provider.endpoints.embeddings import embedding_vector
from mock_provider.endpoints.images import image_png
from mock_provider.plan import filler_text, schema_instance
from mock_provider.request_log import RequestLog
from mock_provider.state import MODEL_IDS

__all__ = [
    "MODEL_IDS",
    "Behaviour",
    "RequestLog",
    "embedding_vector",
    "filler_text",
    "image_png",
    "make_app",
    "make_server",
    "main",
    "parse_model",
    "schema_instance",
    "speech_bytes",
]
