"""``POST /v1/rerank`` in the Cohere/Jina shape: documents ordered by word overlap."""

from __future__ import annotations

import re
from typing import Any

from mock_provider.faults import ScriptedHandler
from mock_provider.handler import int_in, model_name

_TERM_RE = re.compile(r"\w+")


def rerank_score(query: str, document: str) -> float:
    """Share of the query's distinct words found in the document (0.0 .. 1.0)."""
    q = set(_TERM_RE.findall(query.lower()))
    if not q:
        return 0.0
    return len(q & set(_TERM_RE.findall(document.lower()))) / len(q)


def _doc_text(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return doc["text"]
    return None


class RerankHandler(ScriptedHandler):
    """POST /v1/rerank (Cohere/Jina): results by word-overlap score, then document index."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        query, docs = req.get("query"), req.get("documents")
        texts = [_doc_text(d) for d in docs] if isinstance(docs, list) else []
        if not isinstance(query, str) or not texts or any(t is None for t in texts):
            self.send_api_error(400, "'query' (string) and 'documents' (strings or {text}) required")
            return
        top_n = req.get("top_n")
        if top_n is not None and not int_in(top_n, 1, 1_000_000):
            self.send_api_error(400, "'top_n' must be a positive integer")
            return
        scored = sorted(((rerank_score(query, t), i) for i, t in enumerate(texts)),  # type: ignore[arg-type]
                        key=lambda s: (-s[0], s[1]))
        results: list[dict[str, Any]] = []
        for score, i in scored[:top_n]:
            result: dict[str, Any] = {"index": i, "relevance_score": score}
            if req.get("return_documents"):
                result["document"] = {"text": texts[i]}
            results.append(result)
        tokens = len(query.split()) + sum(len(t.split()) for t in texts)  # type: ignore[union-attr]
        await self.reply({
            "id": f"rerank-mock{next(self.state.ids)}", "model": model_name(req), "results": results,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            "usage": {"total_tokens": tokens},
        }, b)
