"""routes.yaml `redaction:` → compiled policies, and the stage each route that selects one runs.

Patterns are compiled once per table here; a custom pattern that can match unboundedly
is refused with its file, line and key (a stream's hold-back needs a bound).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from dsl.errors import KeyPath
from redaction.patterns import Pattern, pattern
from redaction.policy import Policy
from redaction.presets import KINDS, PRESETS, entropy_pattern
from redaction.scanner import Scanner
from stages.redaction import Redaction


class Reporter(Protocol):
    def error(self, path: KeyPath, message: str) -> None: ...
    def warn(self, path: KeyPath, message: str) -> None: ...


def policies(data: Mapping[str, Any], secrets: Mapping[str, Any], reporter: Reporter) -> Mapping[str, Policy]:
    """The policies of `redaction.policies`, keyed by the secrets file's `redaction_key`."""
    specs = _mapping(_mapping(data.get("redaction")).get("policies"))
    if not specs:
        return MappingProxyType({})
    key = secrets.get("redaction_key")
    if not isinstance(key, str) or not key:
        reporter.warn(("redaction",), "no redaction_key in the secrets file: labels use a random key made at "
                      "start, so they change at every restart and reload (and the provider's prompt cache "
                      "misses after one)")
        secret = os.urandom(32)
    else:
        secret = key.encode()
    compiled = {}
    for name, spec in specs.items():
        if isinstance(spec, dict):
            compiled[name] = _policy(name, spec, secret, ("redaction", "policies", name), reporter)
    return MappingProxyType(compiled)


def _policy(name: str, spec: Mapping[str, Any], key: bytes, where: KeyPath, reporter: Reporter) -> Policy:
    found: list[Pattern] = []
    for preset in spec.get("presets", ["secrets"]):
        found += PRESETS.get(preset, ())
    for i, item in enumerate(spec.get("patterns") or ()):
        if not isinstance(item, dict) or not isinstance(item.get("regex"), str):
            continue  # the schema reported it
        kind = str(item.get("name", ""))
        if kind in KINDS:
            reporter.error((*where, "patterns", i, "name"), f"'{kind}' is the name of a built-in pattern")
            continue
        try:
            found.append(pattern(kind, item["regex"]))
        except ValueError as exc:
            reporter.error((*where, "patterns", i, "regex"), str(exc))
    entropy = spec.get("entropy")
    if isinstance(entropy, dict):
        found.append(entropy_pattern(entropy.get("min_length", 24), entropy.get("bits", 4.0),
                                     entropy.get("classes", 3)))
    if not found:
        reporter.warn(where, "no presets, patterns or entropy: this policy redacts nothing")
    return Policy(
        name, Scanner(found, key), block=spec.get("action", "mask") == "block",
        answers=spec.get("answers", True), system=spec.get("system", False),
        cache_marked=spec.get("cache_marked", False),
    )


def agent_policies(
    data: Mapping[str, Any], compiled: Mapping[str, Policy], reporter: Reporter
) -> Mapping[str, Policy]:
    """The policy each agent selects, by agent name."""
    chosen = {}
    for name, spec in _mapping(data.get("agents")).items():
        selected = _mapping(spec).get("redaction")
        if isinstance(selected, str):
            policy = _selected(selected, compiled, ("agents", name, "redaction"), reporter)
            if policy is not None:
                chosen[name] = policy
    return MappingProxyType(chosen)


def route_stage(
    spec: Mapping[str, Any], path: KeyPath, mode: str, ingress: str, compiled: Mapping[str, Policy],
    agents: Mapping[str, Policy], reporter: Reporter,
) -> tuple[Redaction, ...]:
    """The Redaction stage of one route, or none when nothing on it redacts.

    `mode` is its handler's (HandlerRules.redaction): chat requests with agents and
    answers, a JSON body, or "" when the handler does not redact at all.
    """
    selected = spec.get("redaction")
    if selected is not None and not mode:
        reporter.error((*path, "redaction"), f"the {spec.get('handler')} handler does not redact: "
                       "redaction applies to chat and forward routes")
        return ()
    policy = None
    if isinstance(selected, str):
        policy = _selected(selected, compiled, (*path, "redaction"), reporter)
    if mode == "chat" and (policy is not None or agents):
        return (Redaction(ingress, policy, agents, whole_body=False),)
    if mode == "json" and policy is not None:
        return (Redaction(ingress, policy, MappingProxyType({}), whole_body=True),)
    return ()


def _selected(name: str, compiled: Mapping[str, Policy], where: KeyPath, reporter: Reporter) -> Policy | None:
    policy = compiled.get(name)
    if policy is None:
        known = ", ".join(sorted(compiled)) or "none are declared"
        reporter.error(where, f"unknown redaction policy '{name}' (redaction.policies: {known})")
    return policy


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
