"""Content-keyed step cache: key = hash(step, code version, upstream data versions, config,
Python and library versions). Storage is `joblib.Memory`, which writes each result to a
temporary name and renames it into place, so a crash or a concurrent run never leaves a
half-written entry, and `reduce_size` gives us retention.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib


def library_versions(names: Iterable[str]) -> dict[str, str]:
    found = {}
    for name in sorted(set(names)):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def step_cache_key(
    step: str,
    *,
    code_version: str,
    upstream_versions: Mapping[str, str],
    config: Mapping[str, Any],
    libraries: Iterable[str] = (),
) -> str:
    """The recipe documented in README ("Cached steps")."""
    return joblib.hash(
        {
            "step": step,
            "code_version": code_version,
            "upstream": dict(sorted(upstream_versions.items())),
            "config": dict(sorted(config.items())),
            "python": platform.python_version(),
            "libraries": library_versions(libraries),
        }
    )


@dataclass(frozen=True)
class CachedResult:
    value: Any
    data_version: str  # content hash of `value`, computed once when it was stored
    key: str
    hit: bool


def _compute_and_version(step: str, key: str, compute: Callable[[], Any]) -> tuple[Any, str]:
    # `step` and `key` are the memoization arguments; `compute` is ignored by the hash.
    value = compute()
    return value, joblib.hash(value)


class StepCache:
    def __init__(self, root: str | Path, bytes_limit: int | None = None):
        self.root = Path(root)
        self.bytes_limit = bytes_limit
        self._memory = joblib.Memory(self.root, verbose=0)
        self._cached = self._memory.cache(_compute_and_version, ignore=["compute"])

    def contains(self, step: str, key: str) -> bool:
        return self._cached.check_call_in_cache(step, key, None)

    def get_or_compute(self, step: str, key: str, compute: Callable[[], Any]) -> CachedResult:
        hit = self.contains(step, key)
        value, data_version = self._cached(step, key, compute)
        if not hit and self.bytes_limit is not None:
            self._memory.reduce_size(bytes_limit=self.bytes_limit)
        return CachedResult(value=value, data_version=data_version, key=key, hit=hit)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def prune(self, *, bytes_limit: int | None = None, max_age_days: float | None = None) -> None:
        """Drop least-recently-used entries beyond `bytes_limit` and entries older than
        `max_age_days`; with neither, drop everything."""
        if bytes_limit is None and max_age_days is None:
            self._memory.clear(warn=False)
            return
        import datetime as dt

        age = dt.timedelta(days=max_age_days) if max_age_days is not None else None
        self._memory.reduce_size(bytes_limit=bytes_limit, age_limit=age)
