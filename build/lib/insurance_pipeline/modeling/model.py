"""What training hands on: the fitted pipeline and the facts needed to audit it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sklearn.pipeline import Pipeline


@dataclass
class TrainedModel:
    pipeline: Pipeline  # features -> regressor, fitted on the training rows only
    train_row_ids: list[int]  # row ids (0-based CSV rows) the model was fitted on
    description: str
    # Filled in after caching by the trained-model asset:
    model_key: str = ""
    model_file: str = ""
    model_sha256: str = ""
    mlflow_run_id: str = ""
    library_versions: dict[str, str] = field(default_factory=dict)


def assemble_model(transformer, regressor) -> Pipeline:
    """Transformer and regressor are already fitted; the pipeline only chains them."""
    return Pipeline([("features", transformer), ("regressor", regressor)])
