"""Each library adapter, on its own: a model of that library fitted on random data, compiled
to the shared tree representation, gives the library's own predictions on random inputs,
on inputs exactly at its split thresholds, and with missing values imputed as served."""

import numpy as np
import pytest
from lightgbm import LGBMRegressor
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    RandomForestRegressor,
    VotingRegressor,
)
from sklearn.feature_selection import SelectPercentile, VarianceThreshold, f_regression
from sklearn.linear_model import (
    ARDRegression,
    ElasticNet,
    ElasticNetCV,
    LassoLarsCV,
    Ridge,
    RidgeCV,
    SGDRegressor,
)
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import LinearSVR
from sklearn.tree import DecisionTreeRegressor
from tpot.builtin_modules import EstimatorTransformer, Passthrough, SkipTransformer
from xgboost import XGBRegressor

from insurance_pipeline.core.export import ADAPTERS, compile_regressor

pytestmark = pytest.mark.pure

N_FEATURES = 6


def random_data(seed: int, rows: int = 400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, N_FEATURES)) * rng.uniform(1, 1000, N_FEATURES)
    X[:, 0] = rng.integers(0, 5, rows)  # a coarse feature: many ties at thresholds
    y = 3 * X[:, 0] + np.sin(X[:, 1] / 300) * 1000 + X[:, 2] * 0.5 + rng.normal(size=rows)
    return X, y


def probes(X: np.ndarray, thresholds: np.ndarray, seed: int) -> np.ndarray:
    """Random rows, and rows that put every threshold into every column."""
    rng = np.random.default_rng(seed + 100)
    random_rows = rng.normal(size=(300, N_FEATURES)) * X.std(axis=0) + X.mean(axis=0)
    edges = np.repeat(random_rows[:1], len(thresholds), axis=0)
    for column in range(N_FEATURES):
        at = edges.copy()
        at[:, column] = thresholds
        random_rows = np.vstack([random_rows, at])
    return random_rows


def thresholds_of(regressor) -> np.ndarray:
    values = [f.threshold[np.isfinite(f.threshold)] for f in regressor.forests]
    found = np.concatenate(values) if values else np.zeros(0)
    return np.unique(np.concatenate([found, np.nextafter(found, np.inf)]))[:200]


FAMILIES = {
    "sklearn GradientBoosting": lambda s: GradientBoostingRegressor(
        loss="huber", n_estimators=40, max_depth=3, subsample=0.8, random_state=s
    ),
    "LightGBM": lambda s: LGBMRegressor(
        n_estimators=40, num_leaves=15, verbose=-1, n_jobs=1, random_state=s
    ),
    "XGBoost": lambda s: XGBRegressor(n_estimators=40, max_depth=4, n_jobs=1, random_state=s),
    "linear": lambda s: ElasticNet(alpha=0.3, max_iter=10_000, random_state=s),
    # TPOT's default regression space: averaged trees at every depth, one tree, the linear
    # models behind its scalers, selectors and PCA, and selections before trees
    "RandomForest": lambda s: RandomForestRegressor(n_estimators=20, random_state=s),
    "RandomForest shallow": lambda s: RandomForestRegressor(
        n_estimators=15, max_depth=s + 1, max_features=0.5, random_state=s
    ),
    "ExtraTrees": lambda s: ExtraTreesRegressor(n_estimators=20, min_samples_leaf=s + 1),
    "DecisionTree": lambda s: DecisionTreeRegressor(max_depth=[None, 3, 8][s], random_state=s),
    "LinearSVR behind StandardScaler": lambda s: make_pipeline(
        StandardScaler(), LinearSVR(C=10.0, max_iter=20_000, random_state=s)
    ),
    "SGD behind MinMaxScaler": lambda s: make_pipeline(
        MinMaxScaler(), SGDRegressor(max_iter=2000, random_state=s)
    ),
    "LassoLarsCV behind RobustScaler": lambda s: make_pipeline(RobustScaler(), LassoLarsCV()),
    "ElasticNetCV behind MaxAbsScaler": lambda s: make_pipeline(
        MaxAbsScaler(), ElasticNetCV(cv=3, random_state=s)
    ),
    "RidgeCV behind PCA": lambda s: make_pipeline(PCA(n_components=4, whiten=bool(s)), RidgeCV()),
    "ARD behind a selector": lambda s: make_pipeline(
        SelectPercentile(f_regression, percentile=50), ARDRegression()
    ),
    # TPOT's linear spaces: Passthrough, SkipTransformer, FeatureUnion and an inner
    # estimator's prediction as a feature (EstimatorTransformer), as its pipelines nest them
    "TPOT linear pipeline": lambda s: make_pipeline(
        VarianceThreshold(),
        FeatureUnion([("skip", SkipTransformer()), ("pass", Passthrough())]),
        FeatureUnion(
            [
                (
                    "tree",
                    FeatureUnion(
                        [
                            (
                                "est",
                                EstimatorTransformer(
                                    DecisionTreeRegressor(max_depth=4 + s, random_state=s),
                                    cross_val_predict_cv=3,
                                ),
                            )
                        ]
                    ),
                ),
                ("linear", EstimatorTransformer(make_pipeline(StandardScaler(), RidgeCV()))),
                ("xgb", EstimatorTransformer(XGBRegressor(n_estimators=10, max_depth=3))),
                ("pass", Passthrough()),
            ]
        ),
        StandardScaler(),  # after the predictions: scales them too
        LinearSVR(C=10.0, max_iter=20_000, random_state=s),
    ),
    # trees behind scalers: each threshold mapped back to the exact input split
    "DecisionTree behind StandardScaler": lambda s: make_pipeline(
        StandardScaler(), DecisionTreeRegressor(max_depth=[None, 4, 8][s], random_state=s)
    ),
    "RandomForest behind MinMaxScaler and RobustScaler": lambda s: make_pipeline(
        MinMaxScaler(), RobustScaler(), RandomForestRegressor(n_estimators=10, random_state=s)
    ),
    "XGBoost and LightGBM behind MaxAbsScaler": lambda s: make_pipeline(
        MaxAbsScaler(),
        VotingRegressor(
            [
                ("xgb", XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1, random_state=s)),
                ("lgbm", LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1, random_state=s)),
            ]
        ),
    ),
    "RandomForest behind selectors": lambda s: make_pipeline(
        VarianceThreshold(),
        SelectPercentile(f_regression, percentile=70),
        RandomForestRegressor(n_estimators=10, random_state=s),
    ),
}


def test_every_adapter_is_registered_for_its_estimator():
    assert {
        "GradientBoostingRegressor",
        "LGBMRegressor",
        "XGBRegressor",
        "ElasticNet",
        "RandomForestRegressor",
        "ExtraTreesRegressor",
        "DecisionTreeRegressor",
        "LinearSVR",
        "SGDRegressor",
        "LassoLarsCV",
        "ElasticNetCV",
        "RidgeCV",
    } <= set(ADAPTERS)


def test_a_tree_behind_a_projection_or_a_prediction_is_refused_by_name():
    from insurance_pipeline.core.export import UnsupportedForServing

    X, y = random_data(3)
    model = make_pipeline(PCA(n_components=3), DecisionTreeRegressor(max_depth=3)).fit(X, y)
    with pytest.raises(UnsupportedForServing, match="DecisionTreeRegressor behind a projection"):
        compile_regressor(model, N_FEATURES)
    stacked = make_pipeline(
        FeatureUnion([("est", EstimatorTransformer(RidgeCV())), ("pass", Passthrough())]),
        DecisionTreeRegressor(max_depth=3),
    ).fit(X, y)
    with pytest.raises(UnsupportedForServing, match="behind a projection or an inner"):
        compile_regressor(stacked, N_FEATURES)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_adapter_reproduces_its_library_on_random_inputs(family, seed):
    X, y = random_data(seed)
    model = FAMILIES[family](seed).fit(X, y)
    compiled = compile_regressor(model, N_FEATURES)
    inputs = probes(X, thresholds_of(compiled), seed)
    expected = model.predict(inputs)
    np.testing.assert_allclose(compiled.predict(inputs), expected, rtol=1e-9, atol=1e-6)
    rows = [compiled.predict_row(x) for x in inputs[:25]]
    np.testing.assert_allclose(rows, expected[:25], rtol=1e-9, atol=1e-6)


def test_a_weighted_blend_of_every_library_sums_its_adapters():
    X, y = random_data(7)
    blend = VotingRegressor(
        [
            ("gbr", FAMILIES["sklearn GradientBoosting"](7)),
            ("lgbm", FAMILIES["LightGBM"](7)),
            ("xgb", FAMILIES["XGBoost"](7)),
            ("ridge", Ridge(alpha=1.0)),
            ("dropped", "drop"),
        ],
        weights=[0.4, 0.3, 0.2, 0.1, 5.0],
    ).fit(X, y)
    compiled = compile_regressor(blend, N_FEATURES)
    inputs = probes(X, thresholds_of(compiled), 7)
    np.testing.assert_allclose(
        compiled.predict(inputs), blend.predict(inputs), rtol=1e-9, atol=1e-6
    )
