"""Conformal intervals: calibrated out of fold, adaptive, and the non-adaptive baseline equal
to MAPIE's cross-conformal interval on the same folds."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import KFold

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.features.transformer import build_feature_transformer
from insurance_pipeline.modeling.intervals import (
    IntervalConfig,
    conformal_quantile,
    evaluate_interval,
    fit_conformal_interval,
)
from insurance_pipeline.modeling.model import assemble_model

SPEC = GradientBoostingRegressor(loss="huber", n_estimators=60, max_depth=3, random_state=0)


@pytest.fixture(scope="module")
def halves(insurance_frame):
    """Train on one half, judge on the other (the split the DAG would make, smaller)."""
    shuffled = insurance_frame.sample(frac=1.0, random_state=7)
    return shuffled.iloc[:900], shuffled.iloc[900:]


@pytest.fixture(scope="module")
def fitted(halves):
    train, test = halves
    transformer = build_feature_transformer().fit(train[list(FEATURE_COLUMNS)])
    X = transformer.transform(train[list(FEATURE_COLUMNS)])
    model = assemble_model(transformer, SPEC.fit(X, train[TARGET_COLUMN]))
    interval = fit_conformal_interval(train, X, SPEC, IntervalConfig(folds=5, seed=0))
    return model, interval


def test_conformal_quantile_keeps_the_finite_sample_guarantee():
    scores = np.arange(1, 101, dtype=float)  # n = 100
    assert conformal_quantile(scores, 0.9) == 91.0  # ceil(101 * 0.9) = the 91st smallest
    assert conformal_quantile(scores[:5], 0.9) == 5.0  # rank clipped to the largest


def test_the_interval_covers_the_held_out_rows_and_adapts(halves, fitted):
    _, test = halves
    model, interval = fitted
    X = model.named_steps["features"].transform(test[list(FEATURE_COLUMNS)])
    found = evaluate_interval(interval, test, X, model.predict(test[list(FEATURE_COLUMNS)]))
    assert 0.85 <= found.coverage <= 0.95, found
    assert abs(found.coverage - found.baseline_coverage) < 0.05
    assert found.mean_width < found.baseline_mean_width  # narrower on average
    assert found.coverage_by_segment["smoker=yes"] >= 0.8
    lower, upper = interval.bounds(np.zeros(len(X)), X)
    widths = upper - lower
    smokers = (test["smoker"] == "yes").to_numpy()
    assert np.median(widths[smokers]) > 1.5 * np.median(widths[~smokers])  # wide where unsure


def test_the_baseline_equals_mapie_cross_conformal_on_the_same_folds(halves, fitted):
    from mapie.regression import CrossConformalRegressor
    from sklearn.pipeline import Pipeline

    train, test = halves
    _, interval = fitted
    estimator = Pipeline([("features", build_feature_transformer()), ("model", SPEC)])
    mapie = CrossConformalRegressor(
        estimator,
        confidence_level=0.9,
        conformity_score="absolute",
        method="base",
        cv=KFold(5, shuffle=True, random_state=0),
    )
    mapie.fit_conformalize(train[list(FEATURE_COLUMNS)], train[TARGET_COLUMN])
    _, bounds = mapie.predict_interval(test[list(FEATURE_COLUMNS)])
    half_widths = (bounds[:, 1, 0] - bounds[:, 0, 0]) / 2
    np.testing.assert_allclose(half_widths, interval.baseline_half_width, rtol=1e-9)
