"""The training pipeline's shape: the feature transformer, then the regressor TPOT chose."""

from __future__ import annotations

from sklearn.base import clone
from sklearn.pipeline import Pipeline

# The trained pipeline's steps (export reads the steps by these names).
FEATURES_STEP, REGRESSOR_STEP = "features", "regressor"


def assemble_model(transformer, regressor) -> Pipeline:
    """Transformer and regressor are already fitted; the pipeline only chains them."""
    return Pipeline([(FEATURES_STEP, transformer), (REGRESSOR_STEP, regressor)])


def unfitted_pipeline(regressor_spec) -> Pipeline:
    """A fresh transformer and a fresh copy of the regressor spec, to be fitted together:
    what cross-validation refits on each fold."""
    from insurance_pipeline.core.features.transformer import build_feature_transformer

    return assemble_model(build_feature_transformer(), clone(regressor_spec))
