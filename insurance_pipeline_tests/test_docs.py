"""README is the front door and docs/ holds the topics: README stays short, and every command,
module and path README and the docs name exists (a renamed file or make target breaks this
test, not a newcomer's first ten minutes)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from insurance_pipeline.domain.layout import CHECKOUT

pytestmark = pytest.mark.pure

PAGES = [CHECKOUT / "README.md", *sorted((CHECKOUT / "docs").glob("*.md"))]
# Paths that exist only once something ran (state, stacks, build output), or stand for one.
RUNTIME = (".artifacts", ".cache", ".dagster", ".mlflow", ".stack", ".keys", ".venv", "build/")
RUNTIME += ("serving_npz/", "model/", "validation_report/")  # paths inside a model's MLflow run
PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".sh", ".tpl", ".csv")
ROOTS = ("", "insurance_pipeline/", "insurance_pipeline_tests/", "deploy/")


def text(page: Path) -> str:
    return page.read_text()


def make_targets() -> set[str]:
    makefile = (CHECKOUT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))


def named_paths(page: Path) -> set[str]:
    """Backticked tokens and link targets that look like files or folders of the checkout."""
    found = set()
    for token in re.findall(r"`([^`\s]+)`", text(page)) + re.findall(r"\]\(([^)#\s]+)", text(page)):
        if token.startswith(("http", "<")) or any(c in token for c in "*<>…{}$="):
            continue
        if not PATH.match(token) or token.startswith(RUNTIME):
            continue
        if token.endswith(SUFFIXES) or (token.endswith("/") and "/" in token[:-1] + "/"):
            found.add(token)
    return found


def resolves(token: str, page: Path) -> bool:
    bases = [page.parent, *(CHECKOUT / root for root in ROOTS)]
    if any((base / token).exists() for base in bases):
        return True
    name = token.rstrip("/")
    return "/" not in name and any(CHECKOUT.rglob(name))  # a file named alone (`test_api.py`)


def test_readme_is_a_front_door():
    lines = text(CHECKOUT / "README.md").splitlines()
    assert len(lines) <= 250, len(lines)
    assert lines[2] == "```bash" and lines[5] == "```"  # exactly the two commands
    assert lines[3].startswith("make run ") and lines[4].startswith("make test ")
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in text(CHECKOUT / "README.md"), f"README links no {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_named_exists(page):
    targets = make_targets()
    page_text = text(page)
    named = set(re.findall(r"`make ([a-z][a-z-]+)", page_text))
    named |= set(re.findall(r"^make ([a-z][a-z-]+)", page_text, re.M))  # in code blocks
    assert named <= targets, named - targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_named_exists(page):
    missing = sorted(token for token in named_paths(page) if not resolves(token, page))
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_run_with_python_m_exists(page):
    modules = set(re.findall(r"python -m ([\w.]+)", text(page)))
    missing = sorted(m for m in modules if importlib.util.find_spec(m.split(" ")[0]) is None)
    assert not missing, missing
