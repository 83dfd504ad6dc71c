"""Plain replacements for the TPOT and featuretools pieces of a trained pipeline.

Training stores TPOT's fitted pipeline and the featuretools DFS transformer; serving must load
without either. `to_serving_pipeline` returns an equivalent pipeline made only of
scikit-learn/xgboost/lightgbm objects and our numpy DFS twin. It needs neither library to be
importable for the objects it *produces*; it inspects the training objects by class name.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import FeatureUnion, Pipeline

from insurance_pipeline.features.numpy_dfs import NumpyDeepFeatureSynthesis


class NoColumns(BaseEstimator, TransformerMixin):
    """What TPOT's SkipTransformer does: contribute zero columns to a union."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.empty((np.asarray(X).shape[0], 0))


class UnsupportedForServing(TypeError):
    pass


def _is(obj: Any, module_prefix: str, name: str) -> bool:
    cls = type(obj)
    return cls.__name__ == name and cls.__module__.startswith(module_prefix)


def _plain(step: Any) -> Any:
    if isinstance(step, str) or step is None:
        return step
    if _is(step, "tpot", "Passthrough"):
        return "passthrough"
    if _is(step, "tpot", "SkipTransformer"):
        return NoColumns()
    if _is(step, "insurance_pipeline.features.dfs", "DeepFeatureSynthesis"):
        return NumpyDeepFeatureSynthesis(
            feature_spec=step.feature_spec_, input_columns=tuple(step.input_columns)
        ).fit(None)
    if isinstance(step, Pipeline):
        step.steps = [(name, _plain(s)) for name, s in step.steps]
        return step
    if isinstance(step, FeatureUnion):
        step.transformer_list = [(name, _plain(s)) for name, s in step.transformer_list]
        return step
    if isinstance(step, ColumnTransformer):
        step.transformers_ = [(n, _plain(t), cols) for n, t, cols in step.transformers_]
        return step
    if type(step).__module__.startswith(("tpot", "featuretools", "woodwork")):
        raise UnsupportedForServing(
            f"{type(step).__module__}.{type(step).__name__} has no plain equivalent for "
            "serving; use the 'insurance' search space or add a conversion here"
        )
    return step


def to_serving_pipeline(trained: Pipeline) -> Pipeline:
    """A deep copy of `trained` with every TPOT/featuretools object replaced."""
    return _plain(copy.deepcopy(trained))
