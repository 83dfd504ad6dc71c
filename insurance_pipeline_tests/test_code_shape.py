"""The code stays easy to change: no function over 60 lines (decorators included), except
declarative tables such as the search spaces."""

import ast

import pytest

from insurance_pipeline.domain.layout import CHECKOUT

pytestmark = pytest.mark.pure

MAX_LINES = 60
TABLES = {("insurance_pipeline/core/modeling/search.py", "boosted_search_space")}
SOURCES = sorted(
    path
    for folder in ("insurance_pipeline", "tooling", "benchmarks")
    for path in (CHECKOUT / folder).rglob("*.py")
)


def function_lengths(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            yield node.name, node.end_lineno - start + 1


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(CHECKOUT)))
def test_no_function_is_over_60_lines(path):
    relative = path.relative_to(CHECKOUT).as_posix()
    too_long = {
        name: lines
        for name, lines in function_lengths(path)
        if lines > MAX_LINES and (relative, name) not in TABLES
    }
    assert not too_long, f"{relative}: {too_long}"
