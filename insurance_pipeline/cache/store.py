"""Content-keyed step cache: key = hash(step, code version, upstream data versions, config,
Python and library versions).

Layout: `<root>/<step>/<key>/value.bin` beside `meta.json`, a statement signed with the
pipeline's key of the entry's step, key, format (`codec`), sha256 and data version. An entry
is written into a private temporary folder and renamed into place in one step, so a crash or
a concurrent run never leaves a half-written entry and two writers never share a temporary
file. Every read verifies the signature under the trusted keys, then the file against the
signed sha256, before anything is decoded; a pickle is only ever loaded that way. An entry
that fails is refused: `get_or_compute` recomputes and replaces it, with a warning naming it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib

from insurance_pipeline.cache.codec import decode, encode
from insurance_pipeline.core.trust.keys import Signer, Verifier
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)

VALUE_FILE = "value.bin"
META_FILE = "meta.json"
STATEMENT = "step-cache-entry"


# A library some installs ship under another distribution name (`make install` uses the CPU
# build of XGBoost, which provides the same `xgboost` module).
DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu")}


def library_versions(names: Iterable[str]) -> dict[str, str]:
    found = {}
    for name in sorted(set(names)):
        found[name] = "absent"
        for distribution in DISTRIBUTIONS.get(name, (name,)):
            try:
                found[name] = version(distribution)
                break
            except PackageNotFoundError:
                continue
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


class CacheIntegrityError(RuntimeError):
    """A stored entry does not match what was recorded when it was written."""


class CacheEntryMissing(LookupError):
    """No entry for this step and key (never stored, or pruned)."""


@dataclass(frozen=True)
class CachedResult:
    value: Any
    data_version: str  # content hash of `value`, computed once when it was stored
    key: str
    hit: bool


class StepCache:
    def __init__(
        self,
        root: str | Path,
        bytes_limit: int | None = None,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        warn: Callable[[str], None] | None = None,
    ):
        self.root = Path(root)
        self.bytes_limit = bytes_limit
        self.signer, self.verifier = signer, verifier
        self.warn = warn or (lambda message: None)

    def _entry(self, step: str, key: str) -> Path:
        return self.root / step / key

    def contains(self, step: str, key: str) -> bool:
        return (self._entry(step, key) / META_FILE).is_file()

    def _meta(self, step: str, key: str) -> dict:
        entry = self._entry(step, key)
        try:
            text = (entry / META_FILE).read_text()
        except FileNotFoundError as error:
            raise CacheEntryMissing(
                f"step cache has no entry for {step} (key {key}) under {self.root}: it was "
                f"pruned or never stored; materialize {step} again"
            ) from error
        try:
            meta = open_statement(text, STATEMENT, self.verifier)
        except UntrustedStatement as error:
            raise CacheIntegrityError(f"step cache entry {entry}: {error}") from None
        if meta.get("step") != step or meta.get("key") != key:
            raise CacheIntegrityError(
                f"step cache entry {entry} is signed for {meta.get('step')} key "
                f"{meta.get('key')}, not for this step and key"
            )
        return meta

    def load(self, step: str, key: str) -> CachedResult:
        """The stored value, once its signed metadata verified and its file matches it."""
        meta = self._meta(step, key)
        path = self._entry(step, key) / VALUE_FILE
        data = path.read_bytes() if path.is_file() else b""
        actual = hashlib.sha256(data).hexdigest() if data else "missing"
        if actual != meta["sha256"]:
            raise CacheIntegrityError(
                f"step cache file {path} has sha256 {actual}, but its signed metadata says "
                f"{meta['sha256']}: refusing to read it"
            )
        value = decode(meta["format"], data)
        try:
            os.utime(path.parent / META_FILE)  # last use, for least-recently-used pruning
        except OSError:
            pass  # a read-only cache still serves hits
        return CachedResult(value=value, data_version=meta["data_version"], key=key, hit=True)

    def store(self, step: str, key: str, value: Any) -> CachedResult:
        """Write `value` under (step, key) atomically; a concurrent writer of the same entry
        wins or loses as a whole (both wrote the same content: same key). A refused entry
        already there is replaced."""
        folder = self.root / step
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder))
        try:
            fmt, data = encode(value)
            (staging / VALUE_FILE).write_bytes(data)
            data_version = joblib.hash(value)
            meta = {
                "step": step,
                "key": key,
                "format": fmt,
                "sha256": hashlib.sha256(data).hexdigest(),
                "data_version": data_version,
                "created": time.time(),
            }
            (staging / META_FILE).write_text(sign_statement(STATEMENT, meta, self.signer))
            self._commit(staging, step, key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if self.bytes_limit is not None:
            self.prune(bytes_limit=self.bytes_limit)
        return CachedResult(value=value, data_version=data_version, key=key, hit=False)

    def _commit(self, staging: Path, step: str, key: str) -> None:
        target = self._entry(step, key)
        try:
            staging.rename(target)
            return
        except OSError:
            if not target.exists():
                raise  # not a lost race: a real error
        try:
            self._meta(step, key)
            return  # a valid entry won the race
        except (CacheIntegrityError, CacheEntryMissing):
            aside = target.with_name(f".refused-{key}-{os.getpid()}")
            target.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
            staging.rename(target)

    def get_or_compute(self, step: str, key: str, compute: Callable[[], Any]) -> CachedResult:
        if self.contains(step, key):
            try:
                return self.load(step, key)
            except CacheIntegrityError as error:
                self.warn(f"step cache entry refused, recomputing {step}: {error}")
        return self.store(step, key, compute())

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every complete entry."""
        found = []
        for meta in self.root.glob(f"*/*/{META_FILE}"):
            folder = meta.parent
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            found.append((meta.stat().st_mtime, size, folder))
        return found

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def prune(self, *, bytes_limit: int | None = None, max_age_days: float | None = None) -> None:
        """Drop least-recently-used entries beyond `bytes_limit` and entries unused for more
        than `max_age_days`; with neither, drop everything."""
        if bytes_limit is None and max_age_days is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        entries = sorted(self._entries(), key=lambda e: e[0], reverse=True)  # newest first
        cutoff = time.time() - max_age_days * 86400 if max_age_days is not None else None
        kept = 0
        for last_use, size, folder in entries:
            too_old = cutoff is not None and last_use < cutoff
            too_big = bytes_limit is not None and kept + size > bytes_limit
            if too_old or too_big:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                kept += size
