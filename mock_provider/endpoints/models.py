"""The model catalog: ``GET /v1/models`` (which ``/_mock/config`` can break, slow or change,
for the gateway's catalog refresh) and ``GET /v1/models/{id}``."""

from __future__ import annotations

import asyncio

from mock_provider.faults import ScriptedHandler
from mock_provider.state import model_object


class ModelsHandler(ScriptedHandler):
    """GET /v1/models in the OpenAI list shape, subject to the /_mock/config catalog fault."""

    async def get(self) -> None:
        fault = self.state.models_fault
        if fault is not None:
            if fault == "hang":
                await self.hang()
                return
            if not fault.startswith("slow-"):
                self.send_api_error(int(fault))
                return
            await asyncio.sleep(int(fault[5:]) / 1000.0)
            if self._disconnected:
                return
        self.set_header("Content-Type", "application/json")
        self.finish(self.state.models_body)


class ModelHandler(ScriptedHandler):
    """GET /v1/models/{id}: any id exists (use ``fault-404`` in the id for a miss)."""

    async def get(self, model_id: str) -> None:
        b = await self.gate(model_id)
        if b is not None:
            await self.reply(model_object(model_id), b)
