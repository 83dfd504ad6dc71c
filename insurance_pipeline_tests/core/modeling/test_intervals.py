"""Conformal intervals: calibrated out of fold, adaptive, computed by MAPIE from our
out-of-fold numbers, and the non-adaptive baseline equal to MAPIE's own cross-conformal
interval on the same folds."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import KFold

from insurance_pipeline.core.features.transformer import build_feature_transformer
from insurance_pipeline.core.modeling.intervals import (
    Calibration,
    IntervalConfig,
    evaluate_interval,
    fit_conformal_interval,
)
from insurance_pipeline.core.modeling.model import assemble_model
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN

pytestmark = pytest.mark.pure

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


def test_mapie_keeps_the_finite_sample_rank():
    calibration = Calibration(
        targets=np.arange(1, 101, dtype=float), predictions=np.zeros(100), scales=np.ones(100)
    )
    lower, upper = calibration.mapie_bounds(0.9, np.array([0.0, 10.0]), np.array([1.0, 2.0]))
    # ceil(101 * 0.9) = the 91st smallest score, times each point's own scale
    np.testing.assert_array_equal(lower, [-91.0, 10.0 - 182.0])
    np.testing.assert_array_equal(upper, [91.0, 10.0 + 182.0])
    lower, upper = calibration.mapie_bounds(0.9, np.array([10.0]), None)  # the baseline
    np.testing.assert_array_equal([lower[0], upper[0]], [10.0 - 91.0, 10.0 + 91.0])


def test_the_quantile_ranks_the_out_of_fold_normalized_residuals(fitted):
    _, interval = fitted
    calibration = interval.calibration
    assert interval.calibration_rows == 900
    scores = np.sort(np.abs(calibration.targets - calibration.predictions) / calibration.scales)
    assert interval.quantile == scores[int(np.ceil(901 * 0.9)) - 1]
    assert calibration.scales.min() >= interval.scale_floor


def test_too_few_rows_for_the_level_is_refused_by_name(halves):
    train, _ = halves
    rows = train.iloc[:8]
    X = build_feature_transformer().fit_transform(rows[list(FEATURE_COLUMNS)])
    with pytest.raises(ValueError, match="at level 0.9; got 8 training rows"):
        fit_conformal_interval(rows, X, SPEC, IntervalConfig(folds=2))


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


def test_cross_validation_pools_the_interval_over_every_held_out_row(insurance_frame):
    from insurance_pipeline.core.modeling.evaluation import cross_validate

    cv = cross_validate(
        insurance_frame, SPEC, n_splits=2, n_repeats=1, n_jobs=1, interval_config=IntervalConfig()
    )
    found = cv["interval"]
    assert 0.85 <= found["coverage"] <= 0.95, found
    # pooled over all rows: a count of covered rows out of every row
    covered = found["coverage"] * len(insurance_frame)
    assert abs(covered - round(covered)) < 1e-6
    assert set(found["coverage_by_segment"]) >= {"smoker=yes", "smoker=no"}
    assert found["coverage_by_segment"]["smoker=yes"] >= 0.8
    assert found["mean_width"] < found["baseline_mean_width"]
    assert abs(found["coverage"] - found["baseline_coverage"]) < 0.05


def test_many_rows_switch_to_split_conformal_with_a_histogram_scale_model(halves):
    """The large-data path, on a small table with the thresholds lowered: a held-out
    calibration set (split conformal), LightGBM's absolute-loss boosting as the scale model,
    and the interval still covers the other half and still compiles for the service."""
    from lightgbm import LGBMRegressor

    from insurance_pipeline.core.export import compile_pipeline

    train, test = halves
    transformer = build_feature_transformer().fit(train[list(FEATURE_COLUMNS)])
    X = transformer.transform(train[list(FEATURE_COLUMNS)])
    config = IntervalConfig(cross_conformal_max_rows=500, exact_scale_max_rows=100)
    interval = fit_conformal_interval(train, X, SPEC, config)
    assert interval.method == "split conformal" and interval.training_rows == len(train)
    assert interval.calibration_rows == int(len(train) * config.calibration_fraction)
    assert isinstance(interval.scale_model, LGBMRegressor)
    model = assemble_model(transformer, SPEC.fit(X, train[TARGET_COLUMN]))
    X_test = transformer.transform(test[list(FEATURE_COLUMNS)])
    found = evaluate_interval(interval, test, X_test, model.predict(test[list(FEATURE_COLUMNS)]))
    assert 0.82 <= found.coverage <= 0.97, found
    compiled = compile_pipeline(model, interval)
    rows = test[list(FEATURE_COLUMNS)].head(50).to_dict("records")
    for row in rows:
        row["smoker"] = row["smoker"] == "yes"
    _, low, high = compiled.predict(rows)
    expected_low, expected_high = interval.bounds(
        model.predict(test[list(FEATURE_COLUMNS)].head(50)), X_test[:50]
    )
    assert np.allclose(low, expected_low, atol=1e-6) and np.allclose(high, expected_high, atol=1e-6)
    few = fit_conformal_interval(train, X, SPEC, IntervalConfig())
    assert few.method == "cross-conformal" and few.calibration_rows == len(train)
