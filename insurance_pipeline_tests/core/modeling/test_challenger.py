import numpy as np
import pytest

from insurance_pipeline.core.modeling.challenger import (
    Tolerance,
    challenger_judgement,
    paired_differences,
)
from insurance_pipeline.core.modeling.metrics import RegressionMetrics, regression_metrics

pytestmark = pytest.mark.pure


def metrics(r2, mae, n=50):
    return RegressionMetrics(
        r2=r2,
        mse=1.0,
        rmse=1.0,
        mae=mae,
        n_rows=n,
        n_nonfinite_predictions=0,
        n_negative_infinite_predictions=0,
    )


def test_no_champion_passes():
    gate = challenger_judgement(None, None, Tolerance(), None)
    assert gate.passed and "no other champion" in gate.message


def test_within_tolerance_passes_and_beyond_fails_with_both_numbers():
    champion = metrics(0.86, 2000.0)
    assert challenger_judgement(metrics(0.8551, 2039.0), champion, Tolerance(), 4).passed
    worse_r2 = challenger_judgement(metrics(0.8549, 1900.0), champion, Tolerance(), 4)
    assert not worse_r2.passed
    assert "0.8549" in worse_r2.message and "0.8600" in worse_r2.message
    worse_mae = challenger_judgement(metrics(0.87, 2041.0), champion, Tolerance(), 4)
    assert (
        not worse_mae.passed and "2,041.0" in worse_mae.message and "2,000.0" in worse_mae.message
    )
    assert "champion v4" in worse_mae.message


def test_nothing_to_compare_on_fails_clearly():
    gate = challenger_judgement(None, None, Tolerance(), 2)
    assert not gate.passed and "fewer than 2 rows" in gate.message


def noisy_pair(worse: float, n: int = 1300, seed: int = 1):
    """Truth and two predictions with heavy-tailed errors, the challenger's `worse` times
    larger."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 6000.0, n)
    champion = y + rng.standard_t(4, n) * 900
    challenger = y + rng.standard_t(4, n) * 900 * worse
    return y, challenger, champion


def test_paired_differences_bracket_the_point_difference():
    y, a, b = noisy_pair(1.0)
    found = paired_differences(y, a, b, seed=3)
    assert found.rows == len(y)
    for d in (found.mae, found.r2):
        assert d.ci_low <= d.value <= d.ci_high
    assert found.mae.value == np.abs(y - a).mean() - np.abs(y - b).mean()
    assert paired_differences(y, a, b, seed=3) == found  # reproducible


def test_a_difference_inside_the_noise_passes_and_a_clear_one_fails():
    tolerance = Tolerance()
    y, a, b = noisy_pair(1.03)  # a few % worse in MAE: within the noise of 1,300 rows
    mine, theirs = regression_metrics(y, a), regression_metrics(y, b)
    noise = paired_differences(y, a, b)
    assert noise.mae.ci_low < theirs.mae * tolerance.mae_rise < noise.mae.ci_high
    gate = challenger_judgement(mine, theirs, tolerance, 3, noise)
    assert gate.passed, gate.message
    assert "difference MAE" in gate.message and "[" in gate.message
    y, a, b = noisy_pair(1.5)  # clearly worse
    worse = challenger_judgement(
        regression_metrics(y, a),
        regression_metrics(y, b),
        tolerance,
        3,
        paired_differences(y, a, b),
    )
    assert not worse.passed and "with 95% confidence" in worse.message


def test_many_rows_are_compared_on_the_holdout_with_the_same_rule(insurance_frame):
    """The large-data path on a small table (threshold lowered): the challenger as trained
    and the champion's spec refitted on the same training rows, judged on the held-out rows."""
    from types import SimpleNamespace

    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    from insurance_pipeline.core.data.split import split_rows
    from insurance_pipeline.core.features.transformer import fit_feature_transformer
    from insurance_pipeline.core.modeling.challenger import Tolerance, challenger_judgement, compare
    from insurance_pipeline.core.modeling.model import assemble_model
    from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN

    split = split_rows(insurance_frame, seed=42, test_fraction=0.2)
    features = fit_feature_transformer(split.train[list(FEATURE_COLUMNS)])
    X = features.transform(split.train[list(FEATURE_COLUMNS)])

    def trained(spec):
        return assemble_model(features, spec.fit(X, split.train[TARGET_COLUMN]))

    good = trained(GradientBoostingRegressor(n_estimators=80, max_depth=3, random_state=0))
    poor = trained(LinearRegression())
    challenger = SimpleNamespace(pipeline=poor, model_key="k2", data_version="d")
    champion = SimpleNamespace(version=1, model_key="k1")
    found = compare(challenger, split, champion, good, cross_validated_max_rows=100)
    assert found.method == "holdout" and found.rows == len(split.test)
    assert found.challenger.r2 < found.champion.r2
    verdict = challenger_judgement(
        found.challenger, found.champion, Tolerance(), 1, found.differences
    )
    assert not verdict.passed and "with 95% confidence" in verdict.message
    reverse = compare(
        SimpleNamespace(pipeline=good, model_key="k1", data_version="d"),
        split,
        SimpleNamespace(version=1, model_key="k0"),
        poor,
        cross_validated_max_rows=100,
    )
    assert challenger_judgement(
        reverse.challenger, reverse.champion, Tolerance(), 1, reverse.differences
    ).passed
