"""What training hands on: the fitted pipeline and the facts needed to audit it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import joblib
from sklearn.pipeline import Pipeline

from insurance_pipeline.data.hashing import file_sha256
from insurance_pipeline.modeling.intervals import ConformalInterval

MODEL_FILE = "model.joblib"
# The trained pipeline's steps: the feature transformer, then the regressor TPOT chose.
FEATURES_STEP, REGRESSOR_STEP = "features", "regressor"


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline  # features -> regressor, fitted on the training rows only
    train_row_ids: tuple[int, ...]  # row ids (0-based CSV rows) the model was fitted on
    description: str
    data_version: str  # sha256 of the CSV the model was trained (and is judged) on
    model_key: str  # content hash of the fitted model: its identity in MLflow and in verdicts
    library_versions: dict[str, str] = field(default_factory=dict)
    interval: ConformalInterval | None = None  # the calibrated prediction interval


def assemble_model(transformer, regressor) -> Pipeline:
    """Transformer and regressor are already fitted; the pipeline only chains them."""
    return Pipeline([(FEATURES_STEP, transformer), (REGRESSOR_STEP, regressor)])


def build_trained_model(
    transformer,
    regressor,
    *,
    train_row_ids,
    description: str,
    data_version: str,
    library_versions: dict[str, str],
    interval: ConformalInterval | None = None,
) -> TrainedModel:
    """The one place a TrainedModel is made: its key hashes everything that defines it."""
    pipeline = assemble_model(transformer, regressor)
    rows = tuple(int(i) for i in train_row_ids)
    identity = {"pipeline": pipeline, "rows": rows, "data": data_version}
    if interval is not None:
        identity["interval"] = interval
    return TrainedModel(
        pipeline=pipeline,
        train_row_ids=rows,
        description=description,
        data_version=data_version,
        model_key=joblib.hash(identity),
        library_versions=dict(library_versions),
        interval=interval,
    )


def save_model_file(pipeline: Pipeline, folder: Path) -> tuple[Path, str]:
    """`folder/model.joblib` and its sha256, recorded beside it when written. An existing
    file is reused only if it still matches what was recorded; otherwise this fails naming
    the file (it is never handed on)."""
    path, recorded = folder / MODEL_FILE, folder / f"{MODEL_FILE}.sha256"
    if path.exists() and recorded.exists():
        actual, expected = file_sha256(path), recorded.read_text().strip()
        if actual != expected:
            raise ValueError(
                f"model file {path} has sha256 {actual}, but {expected} was recorded when it "
                "was written: refusing to reuse it (delete the folder to rebuild it)"
            )
        return path, actual
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{MODEL_FILE}.", dir=folder)
    os.close(handle)
    joblib.dump(pipeline, tmp)
    sha = file_sha256(tmp)
    Path(tmp).replace(path)  # atomic: readers never see half a file
    tmp_sha = recorded.with_name(f".{recorded.name}.{os.getpid()}")
    tmp_sha.write_text(sha + "\n")
    tmp_sha.replace(recorded)
    return path, sha
