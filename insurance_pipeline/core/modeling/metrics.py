"""Holdout metrics and the blocking quality gates computed from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


@dataclass(frozen=True)
class RegressionMetrics:
    r2: float
    mse: float
    rmse: float
    mae: float
    n_rows: int
    n_nonfinite_predictions: int
    n_negative_infinite_predictions: int

    def as_dict(self) -> dict:
        return asdict(self)


def regression_metrics(y_true, y_pred) -> RegressionMetrics:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    finite = np.isfinite(y_pred)
    n_nonfinite = int((~finite).sum())
    # Scores over finite predictions only; the gate on `n_nonfinite_predictions` blocks the rest.
    t, p = (y_true[finite], y_pred[finite]) if finite.any() else (y_true, np.zeros_like(y_true))
    mse = float(mean_squared_error(t, p))
    return RegressionMetrics(
        r2=float(r2_score(t, p)),
        mse=mse,
        rmse=float(np.sqrt(mse)),
        mae=float(mean_absolute_error(t, p)),
        n_rows=int(y_true.shape[0]),
        n_nonfinite_predictions=n_nonfinite,
        n_negative_infinite_predictions=int(np.isneginf(y_pred).sum()),
    )


@dataclass(frozen=True)
class Judgement:
    """What a gate decided about one model, and why (the gate's name is its registry's)."""

    passed: bool
    message: str


def r2_judgement(metrics: RegressionMetrics, floor: float) -> Judgement:
    passed = metrics.r2 >= floor
    verdict = "meets" if passed else "is below"
    return Judgement(passed, f"holdout r2 {metrics.r2:.4f} {verdict} the floor {floor:.4f}")


def finite_predictions_judgement(metrics: RegressionMetrics) -> Judgement:
    bad = metrics.n_nonfinite_predictions
    return Judgement(
        bad == 0,
        "all predictions are finite"
        if bad == 0
        else f"{bad} prediction(s) are NaN or infinite "
        f"({metrics.n_negative_infinite_predictions} negative-infinite)",
    )


def row_count_judgement(actual: int, expected: int) -> Judgement:
    return Judgement(actual == expected, f"scored {actual} test rows; expected {expected}")


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class SegmentMetrics:
    """Holdout metrics of one segment: `segment`=`value` (or all=all), over `n` rows."""

    segment: str
    value: str
    n: int
    r2: Estimate
    mae: Estimate
    rmse: Estimate


@dataclass(frozen=True)
class IntervalEvaluation:
    """The interval on held-out rows: coverage overall and per segment, and widths."""

    level: float
    coverage: float
    mean_width: float
    median_width: float
    coverage_by_segment: dict[str, float]
    baseline_coverage: float
    baseline_mean_width: float


@dataclass(frozen=True)
class HoldoutEvaluation:
    """What `validation_metrics` measured for one model on its held-out rows. Thresholds are
    not in here: the gates judge it under the settings in force."""

    model_key: str
    data_version: str
    metrics: RegressionMetrics
    segments: list[SegmentMetrics]
    expected_test_rows: int
    interval: IntervalEvaluation | None = None
