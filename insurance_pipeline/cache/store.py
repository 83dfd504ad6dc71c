"""Content-keyed step cache: key = hash(step, code version, upstream data versions, config,
Python and library versions), in a folder or in object storage (`storage`).

Layout: `<root>/<step>/<key>/value-<token>.bin`, then `meta.json`: a statement signed with the
pipeline's key naming the entry's step, key, format (`codec`), value file, sha256 and data
version. The value is written first, under a name no other writer uses; the entry exists once
its `meta.json` is *created*, which succeeds for exactly one writer (a hard link locally,
`If-None-Match: *` on S3). So two writers of one key leave exactly one complete entry, and a
reader sees no entry or the winner's, never a mix, on one machine or many. Every read verifies
the signature under the trusted keys, then the value against the signed sha256, before
anything is decoded; a pickle is only ever loaded that way. An entry that fails is refused:
`get_or_compute` recomputes and replaces it, with a warning naming it. Each hit records its
time in `last-used` (best effort: a read-only cache still serves hits), which pruning reads
instead of file times.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib

from insurance_pipeline.cache.codec import decode, encode
from insurance_pipeline.cache.storage import RefusedRead, StorageError, storage_for
from insurance_pipeline.core.trust.keys import Signer, TrustError, Verifier
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)

META_FILE = "meta.json"
META_MAX_BYTES = 1024 * 1024  # a signed statement of a few hundred bytes
LAST_USED_FILE = "last-used"
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
    """The recipe documented in docs/graph.md ("Cached steps")."""
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
        max_entry_bytes: int | None = None,
    ):
        self.storage = storage_for(root)
        self.max_entry_bytes = max_entry_bytes  # a larger value is refused: a miss
        self.root = self.storage.url
        self.bytes_limit = bytes_limit
        self.signer = signer
        # no other trusted keys given: entries this pipeline's key signed
        self.verifier = verifier or (Verifier.of(signer) if signer is not None else None)
        self.warn = warn or (lambda message: None)

    def entry_url(self, step: str, key: str) -> str:
        return f"{self.root}/{step}/{key}"

    def contains(self, step: str, key: str) -> bool:
        return self.storage.exists(f"{step}/{key}/{META_FILE}")

    def _meta(self, step: str, key: str) -> dict:
        entry = self.entry_url(step, key)
        try:
            text = self.storage.read(f"{step}/{key}/{META_FILE}", META_MAX_BYTES).decode()
        except FileNotFoundError as error:
            raise CacheEntryMissing(
                f"step cache has no entry for {step} (key {key}) under {self.root}: it was "
                f"pruned or never stored; materialize {step} again"
            ) from error
        except (RefusedRead, UnicodeDecodeError) as error:
            raise CacheIntegrityError(f"step cache entry {entry}: {error}") from None
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
        value_path = f"{step}/{key}/{meta['value']}"
        try:
            data = self.storage.read(value_path, self.max_entry_bytes)
        except FileNotFoundError:
            data = b""
        except RefusedRead as error:
            raise CacheIntegrityError(f"step cache entry refused: {error}") from None
        actual = hashlib.sha256(data).hexdigest() if data else "missing"
        if actual != meta["sha256"]:
            raise CacheIntegrityError(
                f"step cache file {self.root}/{value_path} has sha256 {actual}, but its signed "
                f"metadata says {meta['sha256']}: refusing to read it"
            )
        value = decode(meta["format"], data)
        try:  # last use, for least-recently-used pruning
            self.storage.write(f"{step}/{key}/{LAST_USED_FILE}", str(time.time()).encode())
        except (OSError, StorageError):
            pass  # a read-only cache still serves hits
        return CachedResult(value=value, data_version=meta["data_version"], key=key, hit=True)

    def store(self, step: str, key: str, value: Any) -> CachedResult:
        """The value first, under its own name, then its signed metadata created: one writer
        of a key wins whole. A refused entry already there is replaced."""
        if self.signer is None:
            raise TrustError(
                f"cannot store {step} in the step cache: this process has no signing key "
                "(INSURANCE_SIGNING_KEY)"
            )
        fmt, data = encode(value)
        name = f"value-{uuid.uuid4().hex[:16]}.bin"
        self.storage.write(f"{step}/{key}/{name}", data)
        data_version = joblib.hash(value)
        meta = {
            "step": step,
            "key": key,
            "format": fmt,
            "value": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "data_version": data_version,
            "created": time.time(),
        }
        self._commit(step, key, name, sign_statement(STATEMENT, meta, self.signer).encode())
        if self.bytes_limit is not None:
            self.prune(bytes_limit=self.bytes_limit)
        return CachedResult(value=value, data_version=data_version, key=key, hit=False)

    def _commit(self, step: str, key: str, name: str, statement: bytes) -> None:
        meta_path = f"{step}/{key}/{META_FILE}"
        if self.storage.create(meta_path, statement):
            return
        try:
            self._meta(step, key)
            self.storage.delete(f"{step}/{key}/{name}")  # a valid entry won the race
            return
        except (CacheIntegrityError, CacheEntryMissing):
            pass
        self.storage.delete(meta_path)  # a refused entry: replaced
        if not self.storage.create(meta_path, statement):
            self.storage.delete(f"{step}/{key}/{name}")  # another writer replaced it first

    def get_or_compute(self, step: str, key: str, compute: Callable[[], Any]) -> CachedResult:
        if self.contains(step, key):
            try:
                return self.load(step, key)
            except CacheIntegrityError as error:
                self.warn(f"step cache entry refused, recomputing {step}: {error}")
        return self.store(step, key, compute())

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, "<step>/<key>") of every entry."""
        sizes: dict[str, int] = {}
        for stored in self.storage.list():
            parts = stored.path.split("/")
            if len(parts) == 3:
                entry = "/".join(parts[:2])
                sizes[entry] = sizes.get(entry, 0) + stored.size
        return [(self._last_use(entry), size, entry) for entry, size in sizes.items()]

    def _last_use(self, entry: str) -> float:
        for name, read in ((LAST_USED_FILE, float), (META_FILE, _created)):
            try:
                return read(self.storage.read(f"{entry}/{name}", META_MAX_BYTES).decode())
            except (FileNotFoundError, StorageError, ValueError, KeyError, TypeError):
                continue
        return 0.0

    def size_bytes(self) -> int:
        return sum(stored.size for stored in self.storage.list())

    def prune(self, *, bytes_limit: int | None = None, max_age_days: float | None = None) -> None:
        """Drop least-recently-used entries beyond `bytes_limit` and entries unused for more
        than `max_age_days`; with neither, drop everything."""
        if bytes_limit is None and max_age_days is None:
            self.storage.delete_all()
            return
        entries = sorted(self._entries(), key=lambda e: e[0], reverse=True)  # newest first
        cutoff = time.time() - max_age_days * 86400 if max_age_days is not None else None
        kept = 0
        for last_use, size, entry in entries:
            too_old = cutoff is not None and last_use < cutoff
            too_big = bytes_limit is not None and kept + size > bytes_limit
            if too_old or too_big:
                for stored in list(self.storage.list(entry)):
                    self.storage.delete(stored.path)
            else:
                kept += size


def _created(meta_text: str) -> float:
    """When an entry was stored, as its metadata says (read for pruning only)."""
    return float(json.loads(meta_text)["payload"]["created"])
