"""Generate the DSL reference (docs/reference.md) from the JSON Schemas' descriptions.

    python -m dsl.reference > docs/reference.md

A test checks the committed page matches, so the reference never drifts from the schema.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dsl.validate import SCHEMA_DIR


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _type(schema: dict[str, Any], root: dict[str, Any]) -> str:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "title" in schema:
        return schema["title"]
    kind = schema.get("type", "")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), root)}"
    extra = schema.get("additionalProperties")
    if kind == "object" and isinstance(extra, dict) and not schema.get("properties"):
        return f"map of name → {_type(schema['additionalProperties'], root)}"
    return str(kind or "any")


def _rows(schema: dict[str, Any], root: dict[str, Any], prefix: str) -> list[str]:
    schema = _resolve(schema, root)
    rows: list[str] = []
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        path = f"{prefix}{key}"
        default = f" Default: `{json.dumps(sub['default'])}`." if "default" in sub else ""
        needed = " **Required.**" if key in required else ""
        description = sub.get("description", "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_type(sub, root)} | {description}{needed}{default} |")
        rows += _children(sub, root, path)
    return rows


def _children(schema: dict[str, Any], root: dict[str, Any], path: str) -> list[str]:
    if schema.get("properties"):
        return _rows(schema, root, f"{path}.")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and _resolve(extra, root).get("properties"):
        return _rows(extra, root, f"{path}.<name>.")
    items = schema.get("items")
    if isinstance(items, dict) and _resolve(items, root).get("properties"):
        return _rows(items, root, f"{path}[].")
    return []


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `schemas/*.schema.json` by `python -m dsl.reference`; do not edit by hand.",
        "Strings may use `${VAR}` and `${VAR:-default}` (`$$` is a literal `$`).",
    ]
    for name, title in (("routes", "routes.yaml"), ("secrets", "The secrets file")):
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        out += [
            "",
            f"## {title}",
            "",
            schema.get("description", ""),
            "",
            "| key | type | meaning |",
            "| --- | --- | --- |",
            *_rows(schema, schema, ""),
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
