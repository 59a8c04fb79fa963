"""YAML loading that remembers where every key came from, with ${VAR} expansion.

PyYAML's composer gives nodes with marks; we build plain Python values from them
and keep a map from key path to (line, column) so that every later check can
name the exact place in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dsl.errors import ConfigError, KeyPath, Problem

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(slots=True)
class Document:
    """A loaded YAML file: its data and where each key path sits in the file."""

    file: str
    data: Any
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    # Problems found while loading (unset variables, duplicate keys): reported with the
    # schema's, so that one `check` run names them all.
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: KeyPath) -> tuple[int, int]:
        """Line and column of the deepest known prefix of `path` (1-based)."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return (1, 1)

    def problem(self, path: KeyPath, message: str) -> Problem:
        line, column = self.where(path)
        return Problem(self.file, line, column, path, message)


def load(file: str, env: Mapping[str, str] | None = None) -> Document:
    """Read `file`, expand variables from `env` (default: os.environ), keep key positions."""
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Problem(file, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, 1, 1, (), f"not UTF-8: {exc.reason}")]) from None
    return loads(text, file, os.environ if env is None else env)


def loads(text: str, file: str, env: Mapping[str, str]) -> Document:
    """Parse YAML text (named `file` in messages)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([Problem(file, line, column, (), f"YAML syntax: {exc.problem}")]) from None
    doc = Document(file, None)
    if root is None:
        doc.data = None
        return doc
    builder = _Builder(doc, env)
    doc.data = builder.build(root, ())
    doc.problems = builder.problems
    return doc


class _Builder:
    """Turns a composed node tree into plain values, recording marks and problems."""

    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.doc.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, path, "keys must be plain scalars")
                continue
            key = str(self.constructor.construct_object(key_node))
            child = (*path, key)
            if key in out:
                self._report(key_node, child, f"duplicate key '{key}'")
                continue
            self.doc.marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return node.value  # keep timestamps as text; the schema checks their format
        if "$" not in node.value:
            return self.constructor.construct_object(node)
        expanded = self._expand(node, path)
        if node.style is not None:
            return expanded  # quoted: always a string
        resolved = yaml.safe_load(expanded) if expanded else ""
        return resolved if not isinstance(resolved, dict | list) else expanded

    def _expand(self, node: yaml.ScalarNode, path: KeyPath) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value is not None and (value or default is None):
                return value
            if default is not None:
                return default
            self._report(node, path, f"environment variable ${{{name}}} is not set and has no default")
            return ""

        return _VAR.sub(substitute, node.value)

    def _report(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.doc.file, mark.line + 1, mark.column + 1, path, message))
