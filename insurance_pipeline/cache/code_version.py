"""A step's code version: the source of everything in this package that the step reaches.

Starting from the step's function, it follows (1) the names the function uses: helpers
defined beside it are hashed by their own source and followed in turn, objects from other
project modules bring in their defining module; (2) every import inside each project module
reached, including imports inside functions, transitively. Nothing is listed by hand, so an
edit to any module a step really uses makes that step (and its downstream) miss the cache.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Callable
from functools import cache
from types import ModuleType

PACKAGE = "insurance_pipeline"
_CONSTANT_TYPES = (str, int, float, bool, tuple, list, dict, frozenset)


def _in_package(name: str | None) -> bool:
    return bool(name) and (name == PACKAGE or name.startswith(PACKAGE + "."))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _owner(module_name: str, attribute: str) -> str:
    """The module that defines `module_name.attribute`: a submodule, the attribute's own
    `__module__` (a re-export from a package's __init__ points at its source), or the module."""
    candidate = f"{module_name}.{attribute}"
    if _is_module(candidate):
        return candidate
    obj = getattr(importlib.import_module(module_name), attribute, None)
    owner = getattr(obj, "__module__", None)
    return owner if _in_package(owner) else module_name


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Project modules named by the import statements anywhere in `tree`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _in_package(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if _in_package(base):
                found.update(_owner(base, a.name) for a in node.names if a.name != "*")
    return found


@cache
def _module_closure(name: str) -> frozenset[str]:
    """`name` and every project module it imports, transitively."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        module = importlib.import_module(current)
        package = current if hasattr(module, "__path__") else current.rpartition(".")[0]
        pending.extend(_imports(ast.parse(inspect.getsource(module)), package) - seen)
    return frozenset(seen)


def _function_reach(fn: Callable) -> tuple[list[str], set[str]]:
    """(sources of `fn` and the same-module helpers it uses, project modules it names)."""
    home: ModuleType = sys.modules[fn.__module__]
    sources: list[str] = []
    modules: set[str] = set()
    pending: list[Callable] = [fn]
    seen: set[str] = set()
    while pending:
        obj = pending.pop()
        source = textwrap.dedent(inspect.getsource(obj))
        if source in seen:
            continue
        seen.add(source)
        sources.append(source)
        tree = ast.parse(source)
        package = home.__name__.rpartition(".")[0]
        modules |= _imports(tree, package)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Name):
                continue
            value = vars(home).get(node.id)
            if isinstance(value, ModuleType):
                if _in_package(value.__name__):
                    modules.add(value.__name__)
                continue
            if isinstance(value, _CONSTANT_TYPES):
                sources.append(f"{node.id} = {value!r}")  # a constant beside the step
                continue
            owner = getattr(value, "__module__", None)
            if owner == home.__name__ and (inspect.isfunction(value) or inspect.isclass(value)):
                pending.append(value)  # a helper beside the step: its source, then its names
            elif _in_package(owner) and owner != home.__name__:
                modules.add(owner)
    return sources, modules


def _reach(fn: Callable) -> tuple[list[str], list[str]]:
    sources, modules = _function_reach(fn)
    closure: set[str] = set()
    for name in modules:
        closure |= _module_closure(name)
    closure.discard(fn.__module__)  # the step's own module counts only by what it uses
    return sources, sorted(closure)


def reached_modules(fn: Callable) -> list[str]:
    """The project modules `fn`'s code version covers."""
    return _reach(fn)[1]


def code_version(fn: Callable) -> str:
    """sha256 (16 hex digits) of the function, its helpers and every project module it
    reaches."""
    sources, modules = _reach(fn)
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.encode())
    for name in modules:
        digest.update(name.encode())
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return digest.hexdigest()[:16]
