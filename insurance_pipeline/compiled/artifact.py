"""The serving artifact: `model.npz` (the compiled model and its reference rows, in the format
of `compiled.npz`), `model.c` (its forests as C, `compiled.native`) and `manifest.json`, and
its verified loader.

The manifest pins `model.npz` and `model.c` by sha256. The loader refuses a missing, tampered
or unreadable file, and a model that does not reproduce, to `REFERENCE_TOLERANCE`, the training
pipeline's predictions stored beside it, with an `ArtifactError` whose message says which file
and why.
Arrays are read with `allow_pickle=False`: loading runs no code from the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from insurance_pipeline.compiled.model import CompiledModel, reference_mismatch
from insurance_pipeline.compiled.native import SOURCE_FILE, c_source
from insurance_pipeline.compiled.npz import FormatError, References, pack, unpack
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.domain.schema import MODEL_DESCRIPTION

FORMAT = 2  # 1 was a pickled scikit-learn pipeline (model.joblib)
NPZ_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
# What the service reads: every artifact has the first two; `model.c` is there from the
# versions registered with native forests on (an older one is served by numpy).
REQUIRED_FILES = (NPZ_FILE, MANIFEST_FILE)
ARTIFACT_FILES = (*REQUIRED_FILES, SOURCE_FILE)
# The folder's OpenSSF model signature (written by training, checked by deployers; the
# service itself pins its files by MODEL_SHA256 instead).
SIGNATURE_FILE = "model.sig"


class ArtifactError(RuntimeError):
    """The serving artifact cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Manifest:
    model_name: str
    version: int
    sha256: str
    format: int = FORMAT
    model_file: str = NPZ_FILE
    description: str = MODEL_DESCRIPTION
    model_key: str = ""
    library_versions: dict[str, str] = field(default_factory=dict)
    trees: int = 0
    depth: int = 0
    reference_rows: int = 0
    native_source: str = ""  # the forests' C source, pinned by `native_sha256`
    native_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass(frozen=True, eq=False)
class LoadedArtifact:
    model: CompiledModel
    manifest: Manifest
    references: References | None = None
    native_source: Path | None = None  # the pinned C source, when the manifest names one


def write_artifact(
    model: CompiledModel, references: References, folder: Path, **manifest_fields
) -> Manifest:
    """Save the model with its reference rows (and interval bounds), its forests as C, then
    its manifest pinning both, each written to a temporary name first."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **pack(model, references))
    tmp_model = folder / f".{NPZ_FILE}.tmp"
    tmp_model.write_bytes(buffer.getvalue())
    tmp_source = folder / f".{SOURCE_FILE}.tmp"
    tmp_source.write_text(c_source(model))
    manifest = Manifest(
        sha256=file_sha256(tmp_model),
        trees=model.n_trees,
        depth=model.depth,
        reference_rows=len(references.rows),
        native_source=SOURCE_FILE,
        native_sha256=file_sha256(tmp_source),
        **manifest_fields,
    )
    tmp_model.replace(folder / NPZ_FILE)
    tmp_source.replace(folder / SOURCE_FILE)
    tmp_manifest = folder / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(manifest.to_json())
    tmp_manifest.replace(folder / MANIFEST_FILE)
    return manifest


def manifest_digest(folder: Path) -> str:
    """The artifact's pin (MODEL_SHA256): the sha256 of its manifest, which pins model.npz,
    so one digest covers every file the service reads."""
    return file_sha256(folder / MANIFEST_FILE)


def read_manifest(folder: Path, expected_sha256: str | None = None) -> Manifest:
    path = folder / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise ArtifactError(f"manifest not found: {path}") from error
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and actual != expected_sha256:
        raise ArtifactError(
            f"manifest {path} has sha256 {actual}, but MODEL_SHA256 is {expected_sha256}: "
            "refusing a model other than the one deployed"
        )
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ArtifactError(
                f"manifest {path} is format {data.get('format', 1)}, this service reads format "
                f"{FORMAT}: export the model again (`make run`, then `make serve`)"
            )
        known = {f.name for f in fields(Manifest)}
        return Manifest(**{k: v for k, v in data.items() if k in known})  # others: ignored
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as error:
        raise ArtifactError(f"manifest {path} is not a valid manifest: {error}") from error


def _pinned(folder: Path, name: str, sha256: str, what: str) -> Path:
    """`folder/name`, once it is inside the folder and hashes to the manifest's pin."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ArtifactError(
            f"manifest {folder / MANIFEST_FILE}: {what} {name!r} points outside {folder}; "
            "refusing to load it"
        )
    if not path.is_file():
        raise ArtifactError(f"{what} not found: {path}")
    actual = file_sha256(path)
    if actual != sha256:
        raise ArtifactError(
            f"{what} {path} has sha256 {actual}, but the manifest pins "
            f"{sha256}: refusing to load a tampered or mismatched file"
        )
    return path


def _model_path(folder: Path, manifest: Manifest) -> Path:
    return _pinned(folder, manifest.model_file, manifest.sha256, "model file")


def load_artifact(folder: str | os.PathLike, expected_sha256: str | None = None) -> LoadedArtifact:
    """Read the manifest, check its sha256 against `expected_sha256` (the image's and the
    chart's MODEL_SHA256) when given, check the model file against the sha256 the manifest
    pins, load the arrays, and check the model against its reference rows."""
    folder = Path(folder)
    manifest = read_manifest(folder, expected_sha256)
    path = _model_path(folder, manifest)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        model, references = unpack(arrays)
    except FormatError as error:
        raise ArtifactError(f"model file {path} is not in the model.npz format: {error}") from error
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"model file {path} could not be loaded: {error!r}") from error
    problem = reference_problem(model, references)
    if problem:
        raise ArtifactError(f"model file {path} fails its reference check: {problem}")
    source = None
    if manifest.native_source:
        source = _pinned(folder, manifest.native_source, manifest.native_sha256, "model source")
    return LoadedArtifact(model, manifest, references, source)


def reference_problem(model: CompiledModel, references: References) -> str | None:
    """What differs when `model` does not reproduce the reference rows (None: it does)."""
    r = references
    return reference_mismatch(model, r.rows, r.charges, r.lower, r.upper)
