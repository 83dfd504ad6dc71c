"""A step's code version: the source of the code that computes its value.

Starting from the step's function, it follows (1) the names the function uses: helpers
defined beside it (or in another Dagster-layer module) are hashed by their own source and
followed in turn, objects from the pure code (`insurance_pipeline.core`, `.domain`) bring in
their defining module; (2) every import of the pure code inside each module reached,
including imports inside functions, transitively. Resources, settings, the service and the
cache itself are not followed: they do not compute the value (their effect on it, if any,
reaches the step as config or upstream data versions). Nothing is listed by hand, so an edit
to any pure module a step really uses makes that step (and its downstream) miss the cache,
and an edit anywhere else makes nothing miss.
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
# The code whose modules a step's version covers, and the layer whose helpers it follows.
PURE = ("insurance_pipeline.core", "insurance_pipeline.domain")
STEPS = "insurance_pipeline.defs"
_CONSTANT_TYPES = (str, int, float, bool, tuple, list, dict, frozenset)


def _in_package(name: str | None) -> bool:
    return bool(name) and (name == PACKAGE or name.startswith(PACKAGE + "."))


def _under(name: str | None, prefixes: tuple[str, ...]) -> bool:
    return bool(name) and any(name == p or name.startswith(p + ".") for p in prefixes)


def _pure(name: str | None) -> bool:
    return _under(name, PURE)


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
    """`name` and every pure module it imports, transitively."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        module = importlib.import_module(current)
        package = current if hasattr(module, "__path__") else current.rpartition(".")[0]
        found = _imports(ast.parse(inspect.getsource(module)), package)
        pending.extend(m for m in found - seen if _pure(m))
    return frozenset(seen)


def _names(obj) -> tuple[str, ast.AST]:
    source = textwrap.dedent(inspect.getsource(obj))
    return source, ast.parse(source)


def _function_reach(fn: Callable) -> tuple[list[str], set[str]]:
    """(sources of `fn` and the step-layer helpers it uses, pure modules it names)."""
    sources: list[str] = []
    modules: set[str] = set()
    pending: list[Callable] = [fn]
    seen: set[str] = set()
    while pending:
        obj = pending.pop()
        home: ModuleType = sys.modules[obj.__module__]
        source, tree = _names(obj)
        if source in seen:
            continue
        seen.add(source)
        sources.append(source)
        modules |= {m for m in _imports(tree, home.__name__.rpartition(".")[0]) if _pure(m)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                modules |= _follow(vars(home).get(node.id), node.id, home, sources, pending)
    return sources, modules


def _follow(value, name: str, home: ModuleType, sources: list[str], pending: list) -> set[str]:
    """What one name used by step code adds: a pure module, a helper to hash, a constant."""
    if isinstance(value, ModuleType):
        return {value.__name__} if _pure(value.__name__) else set()
    if isinstance(value, _CONSTANT_TYPES):
        sources.append(f"{name} = {value!r}")  # a constant beside the step
        return set()
    owner = getattr(value, "__module__", None)
    if _pure(owner):
        return {owner}
    helper = inspect.isfunction(value) or inspect.isclass(value)
    if helper and (owner == home.__name__ or _under(owner, (STEPS,))):
        pending.append(value)  # step-layer code: its source, then its names
    return set()


def _reach(fn: Callable) -> tuple[list[str], list[str]]:
    sources, modules = _function_reach(fn)
    closure: set[str] = set()
    for name in modules:
        closure |= _module_closure(name)
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
