"""/debug/...: placeholder, being written."""

from __future__ import annotations

from handlers.base import GatewayHandler


class DebugHandler(GatewayHandler):
    async def get(self, kind: str = "") -> None:
        self.fail(404, "not found", "not_found")
