"""What a multipart upload carried, as the audio and files endpoints echo it (``x_mock``)."""

from __future__ import annotations

import hashlib
from typing import Any

import tornado.httputil


def _boundary(content_type: str) -> str | None:
    """The ``boundary`` parameter of a multipart Content-Type, as sent (quotes removed)."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip()
            return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return None


def upload_info(request: tornado.httputil.HTTPServerRequest) -> tuple[dict[str, Any], bytes] | None:
    """What a multipart upload carried (``x_mock``) and the ``file`` part; None if no file.

    Tornado has already parsed the form (``request.files`` / ``body_arguments``); a ``file``
    part sent without a filename lands among the plain fields and still counts.
    """
    fields: dict[str, Any] = {}
    for name, values in request.body_arguments.items():
        texts = [v.decode("utf-8", "replace") for v in values]
        fields[name] = texts[0] if len(texts) == 1 else texts
    parts = request.files.get("file")
    if parts:
        filename: str | None = parts[0].filename
        content, file_type = parts[0].body, parts[0].content_type
    elif "file" in request.body_arguments:
        filename, file_type = None, None
        content = request.body_arguments["file"][0]
        del fields["file"]
    else:
        return None
    ctype = request.headers.get("Content-Type", "")
    return {
        "file_sha256": hashlib.sha256(content).hexdigest(),
        "file_bytes": len(content),
        "filename": filename,
        "file_content_type": file_type,
        "fields": fields,
        "boundary": _boundary(ctype),
        "content_type": ctype,
        "body_bytes": len(request.body),
    }, content

