"""``POST /v1/moderations``: one result per input, flagged iff the text contains "harm"."""

from __future__ import annotations

from typing import Any

from mock_provider.faults import ScriptedHandler
from mock_provider.plan import text_of

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
FLAGGED_CATEGORIES = frozenset({"harassment", "self-harm"})


def moderation_result(text: str) -> dict[str, Any]:
    """One ``results[]`` entry: flagged (harassment, self-harm) iff the text contains "harm"."""
    flagged = "harm" in text.lower()
    cats = {c: flagged and c in FLAGGED_CATEGORIES for c in MODERATION_CATEGORIES}
    return {
        "flagged": flagged,
        "categories": cats,
        "category_scores": {c: 0.99 if cats[c] else 0.001 for c in MODERATION_CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
    }


def _moderation_texts(inp: Any) -> list[str] | None:
    """One text per result: a string, each of a list of strings, or one multimodal input."""
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp:
        if all(isinstance(x, str) for x in inp):
            return inp
        if all(isinstance(x, dict) for x in inp):
            return [text_of(inp)]
    return None


class ModerationsHandler(ScriptedHandler):
    """POST /v1/moderations: one result per input; flagged iff the text contains "harm"."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        texts = _moderation_texts(req.get("input"))
        if texts is None:
            self.send_api_error(400, "'input' must be a string, strings, or content parts")
            return
        model = req.get("model") if isinstance(req.get("model"), str) else "omni-moderation-latest"
        await self.reply({"id": f"modr-mock{next(self.state.ids)}", "model": model,
                          "results": [moderation_result(t) for t in texts]}, b)
