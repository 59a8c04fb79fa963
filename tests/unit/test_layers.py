"""The packages depend on each other in one direction only: each imports only the ones below it."""

from __future__ import annotations

import ast

from tests.support import ROOT

# Lowest first. access and converters are leaves; redaction has the patterns and scanners
# that a stage applies to requests and answers; stages are the steps a route runs
# around its upstream (they know principals and converters); dsl compiles routes.yaml with them;
# ops holds leaf observability; limits counts rate limits and budgets in the shared state;
# upstream talks to providers; toolbox to MCP servers; runtime is the process's state;
# handlers are the endpoints; server is the listener, limits, router and lifecycle.
LAYERS = (
    "access", "converters", "redaction", "stages", "dsl", "ops", "limits", "upstream", "toolbox", "runtime",
    "handlers", "server",
)


def imported_packages(package: str) -> dict[str, set[str]]:
    """Each of our packages that `package` imports, with the modules that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in LAYERS and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_has_its_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench", "mock_provider"} <= set(LAYERS)


def test_packages_import_only_the_layers_below_them() -> None:
    upward = [
        f"{package} imports {target} in {', '.join(sorted(modules))}"
        for index, package in enumerate(LAYERS)
        for target, modules in imported_packages(package).items()
        if LAYERS.index(target) > index
    ]
    assert not upward, "\n".join(upward)
