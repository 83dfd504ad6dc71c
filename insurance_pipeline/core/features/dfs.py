"""featuretools Deep Feature Synthesis as a scikit-learn transformer.

`fit` runs DFS on the training rows to choose the feature definitions; `transform` re-applies
the saved definitions to any rows. Output is float with infinities turned into NaN (division by
children = 0), left for the imputer that follows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from insurance_pipeline.domain.features import (
    DFS_INPUT_COLUMNS,
    DFS_PRIMITIVES,
    IDENTITY,
    FeatureSpec,
)

_INDEX = "_row"


def _entityset(X: pd.DataFrame, columns: tuple[str, ...]):
    import featuretools as ft

    frame = pd.DataFrame({c: np.asarray(X[c], dtype=float) for c in columns})
    frame[_INDEX] = np.arange(len(frame))
    entityset = ft.EntitySet("insurance")
    entityset.add_dataframe(dataframe_name="rows", dataframe=frame, index=_INDEX)
    return entityset


class DeepFeatureSynthesis(BaseEstimator, TransformerMixin):
    def __init__(
        self,
        input_columns: tuple[str, ...] = DFS_INPUT_COLUMNS,
        primitives: tuple[str, ...] = DFS_PRIMITIVES,
    ):
        self.input_columns = input_columns
        self.primitives = primitives

    def fit(self, X: pd.DataFrame, y=None):
        import featuretools as ft

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # featuretools/woodwork deprecation chatter
            features = ft.dfs(
                entityset=_entityset(X, self.input_columns),
                target_dataframe_name="rows",
                trans_primitives=list(self.primitives),
                max_depth=1,
                features_only=True,
            )
        # Definitions are kept as JSON text: stable to pickle, re-loadable by featuretools.
        self.feature_definitions_ = ft.save_features(features)
        self.feature_names_ = [f.get_name() for f in features]
        self.feature_spec_: FeatureSpec = tuple(_spec_of(f) for f in features)
        self.n_features_in_ = len(self.input_columns)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        import featuretools as ft

        features = ft.load_features(self.feature_definitions_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matrix = ft.calculate_feature_matrix(features, _entityset(X, self.input_columns))
        matrix = matrix.sort_index()[self.feature_names_]
        values = matrix.astype("float64").to_numpy(na_value=np.nan)
        values[np.isinf(values)] = np.nan
        return values

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)


def _spec_of(feature) -> tuple[str, tuple[str, ...]]:
    base = feature.base_features
    if not base:
        return (IDENTITY, (feature.get_name(),))
    return (feature.primitive.name, tuple(b.get_name() for b in base))
