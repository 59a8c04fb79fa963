"""Model access: a key with `allowed_agents` may send only the models listed there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.stage import Call, Refusal, Stage


@dataclass(frozen=True, slots=True)
class ModelAccess(Stage):
    """Refuses (403) a `model` the caller's key does not list, spelled exactly as listed.

    On chat routes that is an agent or provider/model; on forward routes the body's
    `model` as sent. A document without `model` is for the key's allowed_endpoints.
    """

    def check(self, call: Call, document: dict[str, Any]) -> Refusal | None:
        principal = call.principal
        if principal is None or principal.allowed_agents is None or "model" not in document:
            return None
        model = document["model"]
        if isinstance(model, str) and principal.may_use(model):
            return None
        named = f"model '{model}'" if isinstance(model, str) else "a model that is not a string"
        return Refusal(403, "agent_not_allowed", f"this key may not use {named}")
