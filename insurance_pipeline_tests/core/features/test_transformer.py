import numpy as np
import pandas as pd
import pytest

from insurance_pipeline.compiled.dfs import DfsProgram
from insurance_pipeline.core.features.dfs import DeepFeatureSynthesis
from insurance_pipeline.core.features.transformer import N_FEATURES, fit_feature_transformer
from insurance_pipeline.domain.schema import FEATURE_COLUMNS

pytestmark = pytest.mark.pure


@pytest.fixture(scope="module")
def fitted(insurance_frame):
    train = insurance_frame.iloc[:1000][list(FEATURE_COLUMNS)]
    return fit_feature_transformer(train), train


def test_33_features_with_the_dfs_names(fitted):
    transformer, train = fitted
    names = list(transformer.get_feature_names_out())
    assert len(names) == N_FEATURES == 33
    for expected in ("age", "age + bmi", "bmi / children", "children > age", "age * bmi"):
        assert expected in names
    assert names[-3:] == ["smoker", "sex", "region"]
    X = transformer.transform(train)
    assert X.shape == (1000, 33)
    assert np.isfinite(X).all(), "infinities must become NaN and then be imputed"


def test_fit_learns_from_train_rows_only(fitted, insurance_frame):
    transformer, train = fitted
    imputer = transformer.named_transformers_["dfs"].named_steps["impute"]
    dfs = transformer.named_transformers_["dfs"].named_steps["dfs"]
    raw = dfs.transform(train)
    np.testing.assert_allclose(imputer.statistics_, np.nanmean(raw, axis=0))
    # transforming other rows does not change what was learned
    before = imputer.statistics_.copy()
    transformer.transform(insurance_frame.iloc[1000:][list(FEATURE_COLUMNS)])
    np.testing.assert_array_equal(before, imputer.statistics_)


def test_unseen_rows_and_children_zero_division(fitted):
    transformer, _ = fitted
    rows = pd.DataFrame(
        [
            {
                "age": 18,
                "sex": "male",
                "bmi": 15.0,
                "children": 0,
                "smoker": "yes",
                "region": "northeast",
            },
            {
                "age": 65,
                "sex": "female",
                "bmi": 50.0,
                "children": 5,
                "smoker": "no",
                "region": "southwest",
            },
        ]
    )
    X = transformer.transform(rows)
    names = list(transformer.get_feature_names_out())
    imputer = transformer.named_transformers_["dfs"].named_steps["impute"]
    j = names.index("age / children")
    assert X[0, j] == pytest.approx(imputer.statistics_[j])  # 18/0 -> inf -> NaN -> train mean
    assert X[1, j] == pytest.approx(13.0)
    assert X[0, names.index("smoker")] == 1.0 and X[1, names.index("smoker")] == 0.0


def test_unknown_category_is_an_error_not_a_silent_code(fitted):
    transformer, train = fitted
    bad = train.head(1).assign(region="midwest")
    with pytest.raises(ValueError, match="unknown categor"):
        transformer.transform(bad)


def test_numpy_twin_matches_featuretools_on_every_row(insurance_frame):
    dfs = DeepFeatureSynthesis().fit(insurance_frame)
    twin = DfsProgram.from_spec(dfs.feature_spec_, dfs.input_columns)
    a, b = dfs.transform(insurance_frame), twin.compute_frame(insurance_frame)
    assert a.shape == b.shape == (1338, 30)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)
    assert twin.feature_names == dfs.feature_names_
    assert twin.spec == dfs.feature_spec_


def test_numpy_twin_edge_cases(insurance_frame):
    dfs = DeepFeatureSynthesis().fit(insurance_frame)
    twin = DfsProgram.from_spec(dfs.feature_spec_, dfs.input_columns)
    edges = pd.DataFrame(
        {"age": [18, 65, 18, 40], "bmi": [15.0, 50.0, 18.0, 40.0], "children": [0, 5, 18, 0]}
    )
    a, b = dfs.transform(edges), twin.compute_frame(edges)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)
