"""``POST /v1/a2a``: a JSON-RPC 2.0 echo, so the gateway's forwarding of agent-to-agent calls
(batches and notifications included) can be tested end to end."""

from __future__ import annotations

from typing import Any

import orjson

from mock_provider.handler import MockHandler


def _rpc_reply(msg: Any) -> dict[str, Any] | None:
    """Echo one JSON-RPC 2.0 request; None for a notification (no ``id``)."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
        rid = msg.get("id") if isinstance(msg, dict) else None
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": "Invalid Request"}}
    if "id" not in msg:
        return None
    return {"jsonrpc": "2.0", "id": msg["id"],
            "result": {"method": msg["method"], "params": msg.get("params")}}


class A2AHandler(MockHandler):
    """POST /v1/a2a: JSON-RPC 2.0 echo (batches too); notifications get 204."""

    def post(self) -> None:
        try:
            msg = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            reply: Any = {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": "Parse error"}}
        else:
            if isinstance(msg, list) and msg:
                reply = [r for r in map(_rpc_reply, msg) if r is not None] or None
            else:
                reply = _rpc_reply(msg if msg != [] else None)
        if reply is None:
            self.set_status(204)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(reply))
