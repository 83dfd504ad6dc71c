"""Nothing in the package reaches into another library's private names: no `from lib._x import`
and no `obj._name` on anything but the project's own objects. A library's private names change
without notice between versions; its public API is what its pin promises. Exceptions are
listed here, each with the reason (none, today, but the project's own)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from insurance_pipeline.domain.layout import CHECKOUT

pytestmark = pytest.mark.pure

PACKAGE = CHECKOUT / "insurance_pipeline"
OWN = "insurance_pipeline"
# (file relative to the package, the expression) -> why it is allowed.
ALLOWED_ATTRIBUTES = {
    # the guard's own method, called on another connection of the same guard class
    ("serving/protocol.py", "other._headers_done"): "our GuardedHttpToolsProtocol",
}


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def private_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] == OWN:
                continue
            parts = node.module.split(".")
            names = [alias.name for alias in node.names]
            if any(p.startswith("_") and p != "__future__" for p in parts) or any(
                n.startswith("_") and not n.startswith("__") for n in names
            ):
                found.append(f"from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != OWN and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"import {alias.name}")
    return found


def private_attributes(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            continue
        found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_of_another_library(path):
    tree = ast.parse(path.read_text())
    relative = path.relative_to(PACKAGE).as_posix()
    assert private_imports(tree) == [], relative
    attributes = [a for a in private_attributes(tree) if (relative, a) not in ALLOWED_ATTRIBUTES]
    assert attributes == [], relative


def test_the_checks_catch_what_they_are_for():
    tree = ast.parse(
        "from dagster._core.errors import X\nimport mlflow._private\n"
        "dataset._to_mlflow_entity()\nself._mine\nserver.config.__dict__\n"
    )
    assert private_imports(tree) == [
        "from dagster._core.errors import X",
        "import mlflow._private",
    ]
    assert private_attributes(tree) == ["dataset._to_mlflow_entity"]
    assert set(ALLOWED_ATTRIBUTES) <= {
        (p.relative_to(PACKAGE).as_posix(), a)
        for p in sources()
        for a in private_attributes(ast.parse(p.read_text()))
    }, "an allowed exception is no longer used: remove it"
