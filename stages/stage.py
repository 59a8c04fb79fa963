"""The stage seam: a route's short list of steps around its upstream exchange.

A route's stages come from its handler's rules and are compiled into the Route with
the table (as its converter chains are), so a request runs them without looking
anything up. Each hook has a do-nothing default; a stage overrides the ones it needs:

- `check`, before the upstream sees the request document: may refuse the request;
- `around`, around each upstream attempt: may hand the attempt another sink (to read
  the answer before, or instead of, the client) and run it more than once (a tool loop);
- `answer`, on the answer in the client's format, buffered (fed whole) or streamed
  (fed as it is relayed): may transform it (redaction);
- `done`, once the answer is complete: accounting.

A hook a stage leaves at its default is not called at all: a route's `Hooks`, found once
when its table is compiled, list the stages that override each hook, and the functions
below run only those, so that a stage costs a request only what it does.

Authentication is not a stage: the Guard decides it when the headers arrive, before
any body byte is read, and hands the principal to the handler, where stages see it.
This package knows no handler and no upstream: the sink and the attempt's outcome are
whatever the handler passes through `around`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from access.keys import Principal
from converters.base import Chain, StreamConverter
from converters.usage import Usage
from redaction.policy import Policy

Sink = TypeVar("Sink")
Outcome = TypeVar("Outcome")


class Call(Protocol):
    """What a stage sees of the request it serves (the handler is one)."""

    principal: Principal | None  # who the Guard authenticated; None on a route without auth
    model_label: str  # the model the request is counted under; "" when none
    redaction: Policy | None  # the policy the redaction stage chose for this request's answer

    def record_usage(self, usage: Usage | None) -> None: ...

    def count_redactions(self, direction: str, kind: str, count: int) -> None:
        """Matches replaced in the request or the answer: counted by kind, never by value."""
        ...


# Not frozen (never changed all the same): made per refused request (see limits/backend.py).
@dataclass(slots=True)
class Refusal:
    """A request a stage refuses: answered `status` in the client's error shape, counted by `reason`."""

    status: int
    reason: str
    message: str


class Stage:
    """One step of a route's request processing; every hook's default does nothing.

    Stages live in the compiled table, shared by every request of their routes: what
    one holds for a request belongs in that request's own objects (its converter, say).
    """

    __slots__ = ()

    def check(self, call: Call, document: dict[str, Any]) -> Refusal | None:
        """Before the upstream sees the request document: a Refusal ends the request."""
        return None

    async def around(self, call: Call, run: Callable[[Sink], Awaitable[Outcome]], sink: Sink) -> Outcome:
        """Around one upstream attempt: `run(sink)` sends it, relaying the answer to `sink`."""
        return await run(sink)

    def answer(self, call: Call) -> StreamConverter | None:
        """A converter for this request's answer, as the client will get it; None: as it is."""
        return None

    def done(self, call: Call, usage: Usage | None) -> None:
        """The answer is complete; `usage` is what the upstream reported."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """A route's stages that override each hook, in the route's order."""

    check: tuple[Stage, ...] = ()
    around: tuple[Stage, ...] = ()
    answer: tuple[Stage, ...] = ()
    done: tuple[Stage, ...] = ()

    @classmethod
    def of(cls, stages: Sequence[Stage]) -> Hooks:
        def overriding(hook: str) -> tuple[Stage, ...]:
            return tuple(s for s in stages if getattr(type(s), hook) is not getattr(Stage, hook))

        return cls(overriding("check"), overriding("around"), overriding("answer"), overriding("done"))


def refusal(hooks: Hooks, call: Call, document: dict[str, Any]) -> Refusal | None:
    """The first stage's refusal of `document`, or None."""
    for stage in hooks.check:
        refused = stage.check(call, document)
        if refused is not None:
            return refused
    return None


def around(
    hooks: Hooks, call: Call, run: Callable[[Sink], Awaitable[Outcome]], sink: Sink
) -> Awaitable[Outcome]:
    """`run(sink)` inside every stage's `around`, the first stage outermost, to be awaited
    (this runs for every upstream attempt): with no such stage, it is `run(sink)` itself."""
    for stage in reversed(hooks.around):
        run = _wrapped(stage, call, run)
    return run(sink)


def _wrapped(
    stage: Stage, call: Call, run: Callable[[Sink], Awaitable[Outcome]]
) -> Callable[[Sink], Awaitable[Outcome]]:
    return lambda sink: stage.around(call, run, sink)


def answer_chain(hooks: Hooks, call: Call) -> Chain | None:
    """The stages' converters for this request's answer, in order; None when none has one."""
    if not hooks.answer:
        return None
    converters = []
    for stage in hooks.answer:  # a loop, not a comprehension: each is a call of its own on 3.11
        converter = stage.answer(call)
        if converter is not None:
            converters.append(converter)
    return Chain(converters) if converters else None


def done(hooks: Hooks, call: Call, usage: Usage | None) -> None:
    for stage in hooks.done:
        stage.done(call, usage)
