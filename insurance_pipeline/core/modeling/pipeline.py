"""The training pipeline's shape: the feature transformer, then the regressor TPOT chose."""

from __future__ import annotations

import numbers

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


_SCALARS = (numbers.Number, str, type(None))  # numbers: bool and numpy scalars too


def hyperparameters(pipeline: Pipeline) -> dict[str, str]:
    """The chosen regressor's hyperparameters, flat, under the names scikit-learn's
    `get_params(deep=True)` gives them (`gradientboostingregressor__max_depth`): every
    scalar (or tuple/list of scalars) value; estimators and callables are described by their
    own parameters instead."""
    regressor = pipeline.named_steps[REGRESSOR_STEP]
    found = {}
    for name, value in sorted(regressor.get_params(deep=True).items()):
        if isinstance(value, _SCALARS) or (
            isinstance(value, tuple | list) and all(isinstance(v, _SCALARS) for v in value)
        ):
            found[name] = str(value)
    return found
