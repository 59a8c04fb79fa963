"""MCP tool definitions as the `tools` entries of an OpenAI or Anthropic request."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


def parameters(input_schema: Any) -> dict[str, Any]:
    """The tool's input schema as both APIs take it: a JSON Schema object of type object."""
    if not isinstance(input_schema, dict) or not input_schema:
        return {"type": "object", "properties": {}}
    if input_schema.get("type") != "object":
        return {**input_schema, "type": "object"}
    return input_schema


def openai_tool(name: str, description: str, input_schema: Any) -> dict[str, Any]:
    """A chat completions `tools` entry."""
    return {"type": "function",
            "function": {"name": name, "description": description, "parameters": parameters(input_schema)}}


def anthropic_tool(name: str, description: str, input_schema: Any) -> dict[str, Any]:
    """A Messages API `tools` entry."""
    return {"name": name, "description": description, "input_schema": parameters(input_schema)}


RENDERERS = MappingProxyType({"openai": openai_tool, "anthropic": anthropic_tool})


def tool_name(entry: dict[str, Any]) -> str | None:
    """The name of a `tools` entry in either format (a client's own, or one of ours)."""
    function = entry.get("function")
    name = function.get("name") if isinstance(function, dict) else entry.get("name")
    return name if isinstance(name, str) else None
