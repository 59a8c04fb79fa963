"""The mock's modules import only those before them in the order its docstring states, so each
can be read knowing only what comes earlier."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
ORDER = ("behaviour", "plan", "wire", "request_log", "scripting", "state", "handler", "faults", "endpoints",
         "control", "app", "cli")


def test_modules_import_only_earlier_ones() -> None:
    rank = {name: i for i, name in enumerate(ORDER)}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] in ("tests", "__init__", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mock_provider."):
                used = node.module.split(".")[1]  # type: ignore[union-attr]
                if used != parts[0] and rank[used] >= rank[parts[0]]:
                    problems.append(f"{path.relative_to(PACKAGE)} imports {node.module}")
    assert not problems, "\n".join(problems)
