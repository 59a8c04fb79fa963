"""Why an upstream attempt gave no answer, whether another target may, and what the client hears.

Every handler that talks to a provider classifies failures here: which walk on to the
next target (transport failures, empty answers, 408/429/5xx/529, a provider refusing our
key) and which are final (other 4xx: the request itself is wrong), and which error the
client gets once no target is left (a refused key is our problem: 502; a timeout: 504;
a 429 keeps its Retry-After).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pycurl

from converters.upstream_errors import UpstreamError
from upstream.ended import CANCELLED, Ended

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
# A provider refusing the gateway's key: its message may quote the key, and the client's own
# token is not at fault, so it is answered as 502 without it.
REFUSED_KEY = frozenset({401, 403})
CIRCUIT_OPEN = "circuit_open"  # the kind of a walk whose every target's breaker is open
# The kind of a prompt too long for a target: another, larger target may take it, the same never.
CONTEXT_OVERFLOW = "context_overflow"
# How providers word "the prompt is too long" (OpenAI's code; Anthropic's and others' messages).
_TOO_LONG = re.compile(r"context[ _](length|window)|prompt is too long|maximum context|too many tokens"
                       r"|exceeds? the context", re.IGNORECASE)


def error_kind(ended: Ended) -> str:
    """A short, label-safe name for why an upstream exchange failed."""
    error = ended.error
    if not error:
        return status_kind(ended.status)
    if error == pycurl.E_OPERATION_TIMEDOUT:
        return "timeout"
    if error in (pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST):
        return "connect"
    if error == CANCELLED:
        return "cancelled"
    return "transfer"


def status_kind(status: int) -> str:
    """The kind of an upstream's HTTP error status."""
    return "rate_limited" if status == 429 else f"http_{status}"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one target gave no answer before anything reached the client."""

    provider: str  # the provider's name (metric label, the refused-key message)
    label: str  # what error messages call the target: provider/model, or the provider
    status: int  # the upstream's HTTP status; 0 when it gave none (transport, unsupported, ...)
    kind: str  # label-safe reason: timeout, connect, transfer, empty, http_500, rate_limited, ...
    message: str
    retry_after: str | None = None
    upstream: UpstreamError | None = None  # the provider's own error, when it answered with one

    @property
    def retryable(self) -> bool:
        """Transport failures, empty answers, 408/429/5xx/529 and a refused key walk on; other
        4xx are about the request itself, so they are final."""
        return not 400 <= self.status < 500 or self.status in RETRYABLE_STATUS or self.status in REFUSED_KEY


def retried_on(failure: Failure, on: frozenset[str]) -> bool:
    """Whether routes.yaml `retry.when` names `failure`: `timeout`, `transport` (any other failure
    without a status: connection, transfer, empty answer), a status such as `429`, or `4xx`/`5xx`."""
    if failure.status < 400:  # no answer, or one without content
        return ("timeout" if failure.kind == "timeout" else "transport") in on
    return str(failure.status) in on or f"{failure.status // 100}xx" in on


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """The error the client gets, in its own format (handlers/errors.py writes it)."""

    status: int
    message: str
    code: str | None
    headers: dict[str, str] | None = None
    type: str | None = None  # the provider's own error type and parameter, passed through
    param: str | None = None


def agent_answer(failures: Sequence[Failure]) -> ErrorAnswer:
    """What a chat client hears when every target failed: the gateway answers for the agent.

    A 4xx the provider explained reaches the client as the provider gave it (clients branch
    on its type, code and param, e.g. context_length_exceeded); other failures are the
    gateway's 502, 503 (the provider said it is overloaded) or 504.
    """
    last = failures[-1]
    if last.status in REFUSED_KEY:
        return refused_key(last)
    if last.kind == CIRCUIT_OPEN:
        return circuit_open(last)
    where = f"{last.label}: {last.message}"
    if len(failures) > 1:
        where = f"all {len(failures)} targets failed; last {where}"
    upstream = last.upstream
    if 400 <= last.status < 500 and upstream is not None:
        retry = {"Retry-After": last.retry_after} if last.status == 429 and last.retry_after else None
        return ErrorAnswer(last.status, upstream.message or where, upstream.code, retry, upstream.type,
                           upstream.param)
    if 400 <= last.status < 500:
        return ErrorAnswer(last.status, where, last.kind)
    if last.kind == "timeout":
        return ErrorAnswer(504, where, last.kind)
    return ErrorAnswer(503 if last.status in (503, 529) else 502, where, last.kind)


def relay_answer(failure: Failure) -> ErrorAnswer:
    """What a forward or passthrough client hears: those relay the provider's own answers,
    so a failure here is the gateway's (the provider's key refused, or no answer at all)."""
    if failure.status in REFUSED_KEY:
        return refused_key(failure)
    if failure.kind == CIRCUIT_OPEN:
        return circuit_open(failure)
    return ErrorAnswer(504 if failure.kind == "timeout" else 502,
                       f"upstream {failure.provider} failed: {failure.kind}", failure.kind)


def circuit_open(failure: Failure) -> ErrorAnswer:
    """Every target is resting (upstream/breaker.py): 503, and when to come back."""
    retry = {"Retry-After": failure.retry_after} if failure.retry_after else None
    return ErrorAnswer(503, failure.message, CIRCUIT_OPEN, retry)


def refused_key(failure: Failure) -> ErrorAnswer:
    message = f"{failure.provider} rejected the gateway's credentials (HTTP {failure.status})"
    return ErrorAnswer(502, message, failure.kind)


def answered_with_error(provider: str, label: str, status: int, error: UpstreamError,
                        retry_after: str | None = None) -> Failure:
    """A target that answered with an error status (`error`: its body, read with the key scrubbed)."""
    message = error.message or f"upstream answered HTTP {status}"
    kind = CONTEXT_OVERFLOW if status in (400, 413) and too_long(error) else status_kind(status)
    return Failure(provider, label, status, kind, message, retry_after, error)


def too_long(error: UpstreamError) -> bool:
    """Whether a provider's 400 says the prompt does not fit the model's context."""
    if error.code == "context_length_exceeded":
        return True
    return error.message is not None and _TOO_LONG.search(error.message) is not None
