"""``/v1/responses``: create (JSON or SSE), retrieve and delete, over the in-memory store."""

from __future__ import annotations

import orjson

from mock_provider.faults import ScriptedHandler
from mock_provider.handler import MockHandler, model_name
from mock_provider.wire.responses import response_object, responses_events, responses_plan


class ResponsesHandler(ScriptedHandler):
    """POST /v1/responses: a ``response`` object, or its SSE events with ``stream: true``."""

    def stream_error_event(self) -> bytes:
        return b"event: error\ndata: " + orjson.dumps({
            "type": "error", "code": "server_error", "message": "mock fault: error mid-stream",
            "param": None, "sequence_number": 2}) + b"\n\n"

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        model = model_name(req)
        plan = responses_plan(req, model, b)
        n = next(self.state.ids)
        final = response_object(plan, model, n, req, done=True)
        if final["store"]:
            self.state.responses.put(final["id"], final)
        if req.get("stream"):
            await self.stream(responses_events(plan, model, n, req), self.delay_s(b), b.fault)
        else:
            await self.reply(final, b)


class ResponseHandler(MockHandler):
    """GET / DELETE /v1/responses/{id} on the in-memory store."""

    def get(self, rid: str) -> None:
        obj = self.state.responses.get(rid)
        if obj is None:
            self.not_found("response", rid, "response_id")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj))

    def delete(self, rid: str) -> None:
        if self.state.responses.pop(rid, None) is None:
            self.not_found("response", rid, "response_id")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"id": rid, "object": "response", "deleted": True}))
