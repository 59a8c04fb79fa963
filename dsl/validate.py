"""JSON Schema validation whose messages point at the file position of the bad key."""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from dsl.errors import Problem
from dsl.loader import Document
from dsl.units import parse_timestamp

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
_MAX_SHOWN = 120


@functools.cache
def validator(name: str, handlers: tuple[str, ...] = ()) -> jsonschema.Draft202012Validator:
    """The compiled validator for schemas/<name>.schema.json (built once per process).

    `handlers`, when given, are the names a route's `handler` may take: the registry's,
    which a test keeps equal to the schema file's list (a test may register one more).
    """
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    if handlers:
        schema["$defs"]["route"]["properties"]["handler"]["enum"] = list(handlers)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=_format_checker())


def _format_checker() -> jsonschema.FormatChecker:
    """jsonschema's checker, with date-time checked by our own parser: jsonschema skips
    that format unless an optional package is installed, and the compiler must be able
    to use every value the schema passed."""
    checker = jsonschema.FormatChecker()
    checker.checks("date-time", raises=ValueError)(parse_timestamp)
    return checker


def validate(
    doc: Document, schema_name: str, *, show_values: bool = True, handlers: tuple[str, ...] = ()
) -> list[Problem]:
    """Every schema violation in `doc`, each located and phrased for an operator.

    `show_values=False` keeps values out of messages: the secrets file's values are secrets.
    """
    problems: list[Problem] = []
    for error in validator(schema_name, handlers).iter_errors(doc.data):
        problems.extend(_explain(doc, error, show_values))
    return problems


def _explain(doc: Document, error: jsonschema.ValidationError, show_values: bool) -> list[Problem]:
    path = tuple(error.absolute_path)
    _shown = _show if show_values else _hide
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        return [doc.problem((*path, key), _unknown_key(key, known)) for key in extra]
    if error.validator == "required":
        return [doc.problem(path, error.message.replace("is a required property", "is required"))]
    if error.validator == "oneOf" and error.context:
        # Name the closest alternative rather than jsonschema's "is not valid under any".
        best = min(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        if best.validator == "type" or "title" in error.schema:
            expected = error.schema.get("title", "a valid value here")
            return [doc.problem(path, f"{_shown(error.instance)} is not {expected}")]
        return [doc.problem(path, best.message if show_values else "value is not valid here")]
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return [doc.problem(path, f"{_shown(error.instance)} is not one of: {allowed}")]
    if error.validator == "type":
        return [doc.problem(path, f"{_shown(error.instance)} is not of type {error.validator_value}")]
    if error.validator == "pattern":
        return [doc.problem(path, f"{_shown(error.instance)} is not in the expected form")]
    if error.validator == "format":
        return [doc.problem(path, f"{_shown(error.instance)} is not a valid {error.validator_value}")]
    if not show_values:
        return [doc.problem(path, f"value fails the schema's '{error.validator}' rule")]
    return [doc.problem(path, error.message[: _MAX_SHOWN * 2])]


def _unknown_key(key: str, known: list[str]) -> str:
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else f" (expected one of: {', '.join(known)})"
    return f"unknown key '{key}'{hint}"


def _hide(value: Any) -> str:
    return "value"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
