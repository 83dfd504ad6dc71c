"""The feature transformer: DFS on the numeric columns + imputation + encodings (33 features)."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from insurance_pipeline.data.contract import CATEGORIES
from insurance_pipeline.features.spec import DFS_INPUT_COLUMNS

N_FEATURES = 33  # 30 DFS features (3 inputs + 27 pairwise) + smoker + sex + region


def build_feature_transformer(dfs=None) -> ColumnTransformer:
    """An unfitted transformer. `dfs` defaults to the featuretools DFS step; serving passes
    its numpy twin."""
    if dfs is None:
        from insurance_pipeline.features.dfs import DeepFeatureSynthesis

        dfs = DeepFeatureSynthesis()
    numeric = Pipeline(
        [
            ("dfs", dfs),
            # keep_empty_features: the feature count must not depend on which rows were seen
            ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
        ]
    )
    return ColumnTransformer(
        [
            ("dfs", numeric, list(DFS_INPUT_COLUMNS)),
            (
                "smoker",
                OrdinalEncoder(categories=[list(CATEGORIES["smoker"])]),
                ["smoker"],
            ),
            (
                "categorical",
                OrdinalEncoder(
                    categories=[list(CATEGORIES["sex"]), list(CATEGORIES["region"])],
                    handle_unknown="error",
                ),
                ["sex", "region"],
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def fit_feature_transformer(train_features) -> ColumnTransformer:
    transformer = build_feature_transformer()
    transformer.fit(train_features)
    n_out = len(transformer.get_feature_names_out())
    if n_out != N_FEATURES:
        raise RuntimeError(f"feature transformer produced {n_out} features, expected {N_FEATURES}")
    return transformer
