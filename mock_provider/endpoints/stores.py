"""``/v1/files`` and ``/v1/batches``: the in-memory stores with OpenAI's cursor pages; a batch
counts the lines of the input file it names."""

from __future__ import annotations

import time
from typing import Any

import orjson

from mock_provider.endpoints.uploads import upload_info
from mock_provider.handler import MockHandler
from mock_provider.state import STORE_LIMIT


class _StoreHandler(MockHandler):
    """JSON answers and OpenAI cursor pages over the in-memory stores."""

    def send_json(self, obj: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj))

    def send_page(self, items: list[dict[str, Any]]) -> None:
        """``{object: list, data, first_id, last_id, has_more}`` with ``limit``/``after``/``order``."""
        if self.get_query_argument("order", "desc") == "desc":
            items = items[::-1]
        after = self.get_query_argument("after", None)
        ids = [it["id"] for it in items]
        if after in ids:
            items = items[ids.index(after) + 1:]
        try:
            limit = int(self.get_query_argument("limit", None) or STORE_LIMIT)
        except ValueError:
            self.send_api_error(400, "'limit' must be an integer")
            return
        page = items[:max(1, limit)]
        self.send_json({"object": "list", "data": page,
                        "first_id": page[0]["id"] if page else None,
                        "last_id": page[-1]["id"] if page else None,
                        "has_more": len(items) > len(page)})


class FilesHandler(_StoreHandler):
    """GET (list, ``purpose`` filter) / POST (multipart ``file`` + ``purpose``) /v1/files."""

    def get(self) -> None:
        purpose = self.get_query_argument("purpose", None)
        self.send_page([obj for obj, _ in self.state.files.values()
                        if purpose is None or obj["purpose"] == purpose])

    def post(self) -> None:
        upload = upload_info(self.request)
        if upload is None:
            self.send_api_error(400, "a multipart 'file' part is required")
            return
        info, content = upload
        purpose = info["fields"].get("purpose")
        if not isinstance(purpose, str) or not purpose:
            self.send_api_error(400, "'purpose' is required")
            return
        now = int(time.time())
        seconds = info["fields"].get("expires_after[seconds]")
        fid = f"file-mock{next(self.state.ids)}"
        obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": now,
               "filename": info["filename"] or "upload", "purpose": purpose, "status": "processed",
               "expires_at": now + int(seconds) if isinstance(seconds, str) and seconds.isdigit() else None,
               "status_details": None}
        self.state.files.put(fid, (obj, content))
        self.send_json({**obj, "x_mock": info})


class FileHandler(_StoreHandler):
    """GET / DELETE /v1/files/{id}."""

    def get(self, fid: str) -> None:
        if (entry := self.state.files.get(fid)) is None:
            self.not_found("File", fid)
            return
        self.send_json(entry[0])

    def delete(self, fid: str) -> None:
        if self.state.files.pop(fid, None) is None:
            self.not_found("File", fid)
            return
        self.send_json({"id": fid, "object": "file", "deleted": True})


class FileContentHandler(_StoreHandler):
    """GET /v1/files/{id}/content: the stored bytes."""

    def get(self, fid: str) -> None:
        if (entry := self.state.files.get(fid)) is None:
            self.not_found("File", fid)
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(entry[1])


_BATCH_OPEN = frozenset({"validating", "in_progress", "finalizing"})


class BatchesHandler(_StoreHandler):
    """GET (list) / POST (create, status ``validating``) /v1/batches."""

    def get(self) -> None:
        self.send_page(list(self.state.batches.values()))

    def post(self) -> None:
        req = self.json_body()
        if req is None:
            return
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(req.get(key), str):
                self.send_api_error(400, f"Missing required parameter: '{key}'")
                return
        stored = self.state.files.get(req["input_file_id"])
        total = sum(1 for line in stored[1].splitlines() if line.strip()) if stored else 0
        now = int(time.time())
        bid = f"batch_mock{next(self.state.ids)}"
        obj = {
            "id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
            "input_file_id": req["input_file_id"], "completion_window": req["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": total, "completed": 0, "failed": 0},
            "metadata": req.get("metadata"),
        }
        self.state.batches.put(bid, obj)
        self.send_json(obj)


class BatchHandler(_StoreHandler):
    """GET /v1/batches/{id}; a ``cancelling`` batch is ``cancelled`` from the next look on."""

    def get(self, bid: str) -> None:
        if (obj := self.state.batches.get(bid)) is None:
            self.not_found("batch", bid, "batch_id")
            return
        if obj["status"] == "cancelling":
            obj.update(status="cancelled", cancelled_at=int(time.time()))
        self.send_json(obj)


class BatchCancelHandler(_StoreHandler):
    """POST /v1/batches/{id}/cancel: an open batch goes to ``cancelling``."""

    def post(self, bid: str) -> None:
        if (obj := self.state.batches.get(bid)) is None:
            self.not_found("batch", bid, "batch_id")
            return
        if obj["status"] in _BATCH_OPEN:
            obj.update(status="cancelling", cancelling_at=int(time.time()))
        self.send_json(obj)
