"""Agent strategies: the order in which one request tries an agent's targets.

Every strategy only orders; the walk (upstream/attempt.py) then tries that order and falls
back down it, so a strategy never decides whether a failure is retried.

- fallback: the declared order.
- round-robin: each request starts one target further (one counter per agent and process).
- weighted: smooth weighted round-robin (nginx's): over any run of sum(weights) requests each
  target comes first exactly `weight` times, interleaved rather than in bursts.
- sticky: weighted rendezvous hashing of a conversation key over the targets. It needs no
  state, so every worker and every instance orders a conversation alike, and a target that
  disappears moves only the conversations that were its own.
- least-latency: the lowest score, the moving average of the time to first byte times one
  plus the requests in flight to the target (`start_try`), so that a fast target already busy
  with many outstanding requests yields to a slightly slower idle one, instead of every
  request piling on the one that was fastest when idle. Untried targets come first (the least
  busy of them first, so that a first burst spreads), and every `EXPLORE_EVERY`-th request
  tries another target first (each in turn), so that a target that became faster is
  noticed. Deterministic, unlike a random draw: tests can count on it.

The orders after the first target: rotated declared order (round-robin, weighted), rendezvous
scores (sticky), least-latency's scores (least-latency).
"""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dsl.table import Agent, Target

EXPLORE_EVERY = 20  # one least-latency request in this many (5 %) tries another target than the fastest
SMOOTHING = 0.3  # weight of the newest time-to-first-byte sample in a target's moving average
FAILURE_SECONDS = 10.0  # a failed attempt counts as this slow a first byte
SESSION_HEADER = "x-session-id"
LAST_CHOICES = 8  # first targets remembered per agent, for /statsz


def rendezvous_order(key: bytes, targets: Sequence[Target], weights: Sequence[int]) -> list[Target]:
    """`targets` by weighted rendezvous score for `key`, highest first.

    Score -w/ln(u), u a hash of key and target in (0, 1): the first target is each one's with
    probability proportional to its weight, and depends only on the key and that target.
    """

    def score(index: int) -> float:
        digest = hashlib.blake2b(key + b"\0" + targets[index].label.encode(), digest_size=8).digest()
        unit = (int.from_bytes(digest, "big") + 0.5) / 2**64
        return -weights[index] / math.log(unit)

    return [targets[i] for i in sorted(range(len(targets)), key=score, reverse=True)]


def conversation_key(agent: str, document: Mapping[str, Any], session: str | None) -> bytes:
    """What identifies a conversation: the client's session (header `x-session-id`, body
    `prompt_cache_key`, `metadata.user_id`, `user`), else the agent, the system prompt and the
    first user message, which every turn of a conversation repeats."""
    metadata = document.get("metadata")
    for given in (
        session,
        document.get("prompt_cache_key"),
        metadata.get("user_id") if isinstance(metadata, dict) else None,
        document.get("user"),
    ):
        if isinstance(given, str) and given:
            return b"session\0" + agent.encode() + b"\0" + given.encode(errors="replace")
    system = document.get("system")
    first_user = None
    for message in document.get("messages") or ():
        role = message.get("role")
        if role in ("system", "developer") and system is None:
            system = message.get("content")
        elif role == "user":
            first_user = message.get("content")
            break
    prefix = orjson.dumps([system, first_user])
    return b"prefix\0" + agent.encode() + b"\0" + prefix


class Strategies:
    """The process's strategy state: round-robin counters, smooth weights, latency averages,
    requests in flight per target, and each agent's last few first targets (for /statsz).

    Held by the Runtime; keyed by agent name and target label, so a reload keeps what still
    applies (a changed list of targets starts its counters afresh).
    """

    def __init__(self) -> None:
        self.turns: dict[str, int] = {}
        self.current: dict[str, list[int]] = {}  # smooth weighted round-robin's running weights
        self.latency: dict[str, float] = {}  # seconds to first byte, moving average, by target label
        # Tries under way, by target label; a target leaves it at zero, so that client-chosen
        # provider/model labels take no memory once their requests end.
        self.in_flight: dict[str, int] = {}
        self.choices: dict[str, collections.deque[str]] = {}  # by agent: its last first targets

    def order(self, agent: Agent, document: Mapping[str, Any], session: str | None = None) -> list[Target]:
        """The targets of `agent` in the order this request tries them (its first remembered)."""
        ordered = self._order(agent, document, session)
        if ordered:
            choices = self.choices.get(agent.name)
            if choices is None:
                choices = self.choices[agent.name] = collections.deque(maxlen=LAST_CHOICES)
            choices.append(ordered[0].label)
        return ordered

    def snapshot(self, agents: Mapping[str, Agent]) -> dict[str, dict[str, Any]]:
        """For /statsz: each configured agent's strategy and its last first targets, oldest first."""
        return {
            name: {"strategy": agent.strategy, "last_choices": list(self.choices.get(name, ()))}
            for name, agent in sorted(agents.items())
        }

    def _order(self, agent: Agent, document: Mapping[str, Any], session: str | None) -> list[Target]:
        targets = list(agent.targets)
        if len(targets) < 2:
            return targets
        if agent.strategy == "sticky":
            return rendezvous_order(conversation_key(agent.name, document, session), targets, agent.weights)
        if agent.strategy == "weighted":
            return _rotated(targets, self._smooth_pick(agent))
        if agent.strategy not in ("round-robin", "least-latency"):
            return targets
        turn = self.turns.get(agent.name, 0)
        self.turns[agent.name] = turn + 1
        if agent.strategy == "round-robin":
            return _rotated(targets, turn % len(targets))
        return self._fastest_first(targets, turn)

    def observe(self, target: Target, seconds: float | None) -> None:
        """A target's time to first byte in one attempt; None: the attempt failed."""
        sample = FAILURE_SECONDS if seconds is None else seconds
        known = self.latency.get(target.label)
        self.latency[target.label] = sample if known is None else known + SMOOTHING * (sample - known)

    def start_try(self, target: Target) -> None:
        """Count one try of `target` as in flight until `end_try` (the whole answer, streams
        included): the caller ends it however the try ends (try/finally; not a context
        manager's object and calls, on every try)."""
        label = target.label
        self.in_flight[label] = self.in_flight.get(label, 0) + 1

    def end_try(self, target: Target) -> None:
        """A try counted by `start_try` is over."""
        label = target.label
        left = self.in_flight[label] - 1
        if left:
            self.in_flight[label] = left
        else:
            del self.in_flight[label]

    def score(self, target: Target) -> tuple[bool, float]:
        """least-latency's rank of `target`, lowest first: untried targets before tried ones;
        among those, requests in flight, weighted by the moving average of time to first byte."""
        busy = 1 + self.in_flight.get(target.label, 0)
        average = self.latency.get(target.label)
        return (False, busy) if average is None else (True, average * busy)

    def _smooth_pick(self, agent: Agent) -> int:
        weights = agent.weights
        current = self.current.get(agent.name)
        if current is None or len(current) != len(weights):
            current = self.current[agent.name] = [0] * len(weights)
        for i, weight in enumerate(weights):
            current[i] += weight
        best = max(range(len(weights)), key=current.__getitem__)
        current[best] -= sum(weights)
        return best

    def _fastest_first(self, targets: list[Target], turn: int) -> list[Target]:
        ordered = sorted(targets, key=self.score)  # stable: ties keep their declared order
        if turn % EXPLORE_EVERY == EXPLORE_EVERY - 1:
            explored = turn // EXPLORE_EVERY % (len(ordered) - 1) + 1
            ordered.insert(0, ordered.pop(explored))
        return ordered


def _rotated(targets: list[Target], start: int) -> list[Target]:
    return targets[start:] + targets[:start]
