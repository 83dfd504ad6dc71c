"""The serving artifact: `model.joblib` + `manifest.json`, and its verified loader.

The manifest pins the file by sha256; the loader refuses a missing, tampered or unreadable
file with an `ArtifactError` whose message says which file and why.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from insurance_pipeline.data.hashing import file_sha256

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


class ArtifactError(RuntimeError):
    """The serving artifact cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Manifest:
    model_name: str
    version: int
    sha256: str
    model_file: str = MODEL_FILE
    display_name: str = "Insurance charges model"
    description: str = (
        "Predicts yearly medical charges from age, sex, bmi, children, smoker, region."
    )
    feature_spec: list = field(default_factory=list)
    library_versions: dict[str, str] = field(default_factory=dict)
    model_key: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def write_artifact(model: Any, folder: Path, **manifest_fields) -> Manifest:
    """Save `model` and its manifest into `folder`, each written to a temporary name first."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    tmp_model = folder / f".{MODEL_FILE}.tmp"
    joblib.dump(model, tmp_model)
    manifest = Manifest(sha256=file_sha256(tmp_model), **manifest_fields)
    tmp_model.replace(folder / MODEL_FILE)
    tmp_manifest = folder / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(manifest.to_json())
    tmp_manifest.replace(folder / MANIFEST_FILE)
    return manifest


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
        return Manifest(**data)
    except FileNotFoundError as error:
        raise ArtifactError(f"manifest not found: {path}") from error
    except (json.JSONDecodeError, TypeError) as error:
        raise ArtifactError(f"manifest {path} is not a valid manifest: {error}") from error


def load_artifact(
    folder: str | os.PathLike, expected_sha256: str | None = None
) -> tuple[Any, Manifest]:
    """Read the manifest, check it against `expected_sha256` (the image's and the chart's
    MODEL_SHA256) when given, check the model file's sha256 against it, then unpickle it."""
    import joblib

    folder = Path(folder)
    manifest = read_manifest(folder)
    if expected_sha256 and manifest.sha256 != expected_sha256:
        raise ArtifactError(
            f"manifest {folder / MANIFEST_FILE} pins sha256 {manifest.sha256}, but "
            f"MODEL_SHA256 is {expected_sha256}: refusing a model other than the one deployed"
        )
    model_path = (folder / manifest.model_file).resolve()
    if not model_path.is_relative_to(folder.resolve()):
        raise ArtifactError(
            f"manifest {folder / MANIFEST_FILE}: model_file {manifest.model_file!r} points "
            f"outside {folder}; refusing to load it"
        )
    if not model_path.is_file():
        raise ArtifactError(f"model file not found: {model_path}")
    actual = file_sha256(model_path)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"model file {model_path} has sha256 {actual}, but the manifest pins "
            f"{manifest.sha256}: refusing to load a tampered or mismatched file"
        )
    try:
        model = joblib.load(model_path)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "unusable"
        raise ArtifactError(f"model file {model_path} could not be loaded: {error!r}") from error
    return model, manifest
