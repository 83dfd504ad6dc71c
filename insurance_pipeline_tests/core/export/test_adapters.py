"""Each library adapter, on its own: a model of that library fitted on random data, compiled
to the shared tree representation, gives the library's own predictions on random inputs,
on inputs exactly at its split thresholds, and with missing values imputed as served."""

import numpy as np
import pytest
from lightgbm import LGBMRegressor
from sklearn.ensemble import GradientBoostingRegressor, VotingRegressor
from sklearn.linear_model import ElasticNet, Ridge
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
}


def test_every_adapter_is_registered_for_its_estimator():
    assert {"GradientBoostingRegressor", "LGBMRegressor", "XGBRegressor", "ElasticNet"} <= set(
        ADAPTERS
    )


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
