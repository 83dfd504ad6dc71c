"""Export covers every estimator the search spaces can choose, exactly: the compiled model
reproduces the fitted pipeline on every row of the data and on the reference rows."""

import numpy as np
import pytest
from lightgbm import LGBMRegressor
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor, VotingRegressor
from sklearn.linear_model import ElasticNet
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBRegressor

from insurance_pipeline.core.export import (
    UnsupportedForServing,
    export_pipeline,
    reference_rows,
    training_frame,
)
from insurance_pipeline.core.features.transformer import fit_feature_transformer
from insurance_pipeline.core.modeling.model import assemble_model
from insurance_pipeline.core.modeling.search import SearchBudget, run_search
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN

pytestmark = pytest.mark.pure


def lgbm(**kwargs):
    return LGBMRegressor(n_estimators=60, num_leaves=12, verbose=-1, n_jobs=1, **kwargs)


REGRESSORS = {
    "gbr-huber": lambda: GradientBoostingRegressor(loss="huber", n_estimators=60, max_depth=3),
    "gbr-absolute": lambda: GradientBoostingRegressor(
        loss="absolute_error", n_estimators=40, max_depth=5, subsample=0.8, random_state=1
    ),
    "gbr-squared": lambda: GradientBoostingRegressor(n_estimators=30, max_depth=2),
    "lightgbm-huber": lambda: lgbm(objective="huber", alpha=5000),
    "lightgbm-l1": lambda: lgbm(objective="l1"),
    "lightgbm-squared-deep": lambda: LGBMRegressor(n_estimators=40, num_leaves=64, verbose=-1),
    "xgboost-squared": lambda: XGBRegressor(n_estimators=60, max_depth=5, n_jobs=1),
    "xgboost-absolute": lambda: XGBRegressor(
        objective="reg:absoluteerror", n_estimators=40, max_depth=3, n_jobs=1
    ),
    "xgboost-huber": lambda: XGBRegressor(
        objective="reg:pseudohubererror", huber_slope=3000, n_estimators=40, n_jobs=1
    ),
    "blend": lambda: VotingRegressor(
        [
            ("gbr", GradientBoostingRegressor(loss="huber", n_estimators=40, max_depth=3)),
            ("lgbm", lgbm(objective="huber", alpha=5000, max_depth=3)),
            ("mean", lgbm(max_depth=3)),
        ],
        weights=[0.5, 0.4, 0.1],
    ),
    "blend-with-xgboost-and-linear": lambda: VotingRegressor(
        [
            ("xgb", XGBRegressor(n_estimators=30, max_depth=3, n_jobs=1)),
            ("linear", ElasticNet(alpha=0.5, max_iter=5000)),
        ],
    ),
    "elasticnet": lambda: ElasticNet(alpha=0.1, l1_ratio=0.5, max_iter=20000),
    "wrapped": lambda: Pipeline([("skip", "passthrough"), ("gbr", GradientBoostingRegressor())]),
    "random-forest": lambda: RandomForestRegressor(n_estimators=30, random_state=0),
    "scaled-linear": lambda: Pipeline([("scale", StandardScaler()), ("linear", ElasticNet())]),
    "scaled-forest": lambda: Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestRegressor(n_estimators=20))]
    ),
}


@pytest.fixture(scope="module")
def fitted_features(insurance_frame):
    X = insurance_frame[list(FEATURE_COLUMNS)]
    features = fit_feature_transformer(X)
    return features, X, features.transform(X), insurance_frame[TARGET_COLUMN].to_numpy()


def service_rows(frame) -> list[dict]:
    return [{**r, "smoker": r["smoker"] == "yes"} for r in frame.to_dict("records")]


@pytest.mark.parametrize("family", sorted(REGRESSORS))
def test_export_reproduces_the_pipeline_on_every_row(fitted_features, family):
    features, X, Xf, y = fitted_features
    pipeline = assemble_model(features, REGRESSORS[family]().fit(Xf, y))
    export = export_pipeline(pipeline)
    rows = service_rows(X)
    expected = pipeline.predict(X)
    np.testing.assert_allclose(export.model.predict(rows).charges, expected, rtol=0, atol=1e-6)
    singles = [export.model.predict_row(r)[0] for r in rows[:40]]
    np.testing.assert_allclose(singles, expected[:40], rtol=0, atol=1e-6)
    assert len(export.references.rows) == len(export.references.charges) > 1000


def test_reference_rows_cover_every_category_and_bound():
    rows = reference_rows()
    for field, values in {
        "age": {18, 65},
        "bmi": {15.0, 50.0},
        "children": {0, 5},
        "smoker": {True, False},
        "sex": {"male", "female"},
        "region": {"northeast", "northwest", "southeast", "southwest"},
    }.items():
        assert values <= {r[field] for r in rows}, field
    assert set(training_frame(rows[:2])["smoker"]) <= {"yes", "no"}


def test_an_estimator_without_a_numpy_form_is_refused_by_name(fitted_features):
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.preprocessing import PolynomialFeatures

    features, _, Xf, y = fitted_features
    neighbours = KNeighborsRegressor().fit(Xf, y)
    with pytest.raises(UnsupportedForServing, match="KNeighborsRegressor"):
        export_pipeline(assemble_model(features, neighbours))
    projected = Pipeline([("pca", PCA(n_components=3)), ("gbr", GradientBoostingRegressor())])
    with pytest.raises(
        UnsupportedForServing, match="GradientBoostingRegressor behind a projection"
    ):
        export_pipeline(assemble_model(features, projected.fit(Xf, y)))
    squared = Pipeline([("poly", PolynomialFeatures()), ("linear", ElasticNet())])
    with pytest.raises(UnsupportedForServing, match="'poly' is .*PolynomialFeatures"):
        export_pipeline(assemble_model(features, squared.fit(Xf, y)))


def test_a_real_tpot_search_result_exports(fitted_features):
    """TPOT's own fitted pipeline object (baseline space: ElasticNet), not a hand-built one."""
    features, X, Xf, y = fitted_features
    budget = SearchBudget(
        generations=1, population_size=4, cv=2, n_jobs=1, search_space="baseline", random_state=3
    )
    found = run_search(Xf, y, budget, progress=lambda _: None)
    pipeline = assemble_model(features, found.pipeline)
    export = export_pipeline(pipeline)
    np.testing.assert_allclose(
        export.model.predict(service_rows(X)).charges, pipeline.predict(X), rtol=0, atol=1e-6
    )
