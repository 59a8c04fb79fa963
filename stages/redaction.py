"""Redaction: secrets and personal data replaced in requests before any upstream sees them,
and in answers before the client does (redaction/ has the patterns and scanners).

One stage per route that selects a policy (or whose agents do), compiled with the
table. The request's policy is the agent's when the client names an agent that has
one, else the route's; `check` chooses it, and hands it to `answer` through the call.
Only counts by kind are reported (metrics, /statsz, the access log), never a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from converters.base import StreamConverter
from redaction.answers import AnswerRedactor
from redaction.json_answers import JsonAnswerRedactor
from redaction.policy import Policy
from redaction.requests import redact_chat, redact_strings
from stages.stage import Call, Refusal, Stage


@dataclass(frozen=True, slots=True)
class Redaction(Stage):
    """`whole_body`: a forward route's JSON body (every string but names and ids), and its
    JSON answer likewise; else a chat request and answer in `client_format`."""

    client_format: str
    policy: Policy | None  # the route's
    agents: Mapping[str, Policy]  # agents' own, by name
    whole_body: bool

    def check(self, call: Call, document: dict[str, Any]) -> Refusal | None:
        model = document.get("model")
        policy = self.agents.get(model, self.policy) if isinstance(model, str) else self.policy
        if policy is None:
            return None
        found: list[str] = []
        if self.whole_body:
            redact_strings(document, policy, found, skip_names=True)
        else:
            redact_chat(document, self.client_format, policy, found)
            if policy.answers:
                call.redaction = policy
        if not found:
            return None
        for kind, count in sorted(Counter(found).items()):
            call.count_redactions("request", kind, count)
        if policy.block:
            kinds = ", ".join(sorted(set(found)))
            return Refusal(400, "redaction_blocked",
                           f"the request holds data this route does not send to a provider ({kinds})")
        return None

    def answer(self, call: Call) -> StreamConverter | None:
        """A chat answer: with the policy `check` chose. A forward answer: with the route's,
        whatever the request's body was (a GET may fetch a stored answer). None, the usual
        case, is told before anything is made: every chat answer asks, twice."""
        policy = self.policy if self.whole_body else call.redaction
        if policy is None or (self.whole_body and not policy.answers):
            return None

        def counted(kind: str) -> None:
            call.count_redactions("answer", kind, 1)

        if self.whole_body:
            return JsonAnswerRedactor(policy, counted)
        return AnswerRedactor(policy, self.client_format, counted)
