"""The feature transformer: DFS on the numeric columns + imputation + encodings (33 features)."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from insurance_pipeline.core.data.contract import CATEGORIES
from insurance_pipeline.domain.features import DFS_INPUT_COLUMNS

N_FEATURES = 33  # 30 DFS features (3 inputs + 27 pairwise) + smoker + sex + region
# Step names inside the fitted transformer (export reads the steps by them). DFS comes first.
DFS_STEP, IMPUTE_STEP = "dfs", "impute"


def build_feature_transformer() -> ColumnTransformer:
    """An unfitted transformer: featuretools DFS + mean imputation, then ordinal codes."""
    from insurance_pipeline.core.features.dfs import DeepFeatureSynthesis

    numeric = Pipeline(
        [
            (DFS_STEP, DeepFeatureSynthesis()),
            # keep_empty_features: the feature count must not depend on which rows were seen
            (IMPUTE_STEP, SimpleImputer(strategy="mean", keep_empty_features=True)),
        ]
    )
    return ColumnTransformer(
        [
            (DFS_STEP, numeric, list(DFS_INPUT_COLUMNS)),
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
