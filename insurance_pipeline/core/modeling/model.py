"""What training hands on: the fitted pipeline and the facts needed to audit it."""

from __future__ import annotations

from dataclasses import dataclass, field

import joblib
from sklearn.pipeline import Pipeline

from insurance_pipeline.core.modeling.intervals import ConformalInterval
from insurance_pipeline.core.modeling.pipeline import (  # noqa: F401 - re-exported
    FEATURES_STEP,
    REGRESSOR_STEP,
    assemble_model,
)


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline  # features -> regressor, fitted on the training rows only
    train_row_ids: tuple[int, ...]  # row ids (0-based CSV rows) the model was fitted on
    description: str
    data_version: str  # sha256 of the CSV the model was trained (and is judged) on
    model_key: str  # content hash of the fitted model: its identity in MLflow and in verdicts
    library_versions: dict[str, str] = field(default_factory=dict)
    interval: ConformalInterval | None = None  # the calibrated prediction interval


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
