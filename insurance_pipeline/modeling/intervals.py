"""Conformal prediction intervals that adapt to the data, with every training row kept in the
point model.

Cross-conformal with normalized residuals ("CV" calibration, as in Barber et al.'s
jackknife+/CV+ family, with the full-data model at prediction time):

1. out-of-fold predictions: the feature transformer and a fresh copy of the chosen regressor
   spec are refitted on K-1 folds and predict the K-th, so every training row has a residual
   from a model that never saw it; the point model itself is still fitted on every row;
2. a scale model learns the typical absolute residual from the features (median regression:
   GradientBoosting with absolute loss), cross-fitted so that each row's scale also comes from
   a model that never saw it;
3. the conformal quantile q of |residual| / scale at level ceil((n + 1) * level) / n;
4. the interval at x: prediction ± q * max(scale(x), floor).

Measured (README "Intervals"): at 90 % it covers as the non-adaptive baseline (split conformal
on absolute residuals) does, about a fifth narrower on average, wide for smokers and narrow
for most non-smokers. MAPIE 1.6 offers normalized scores only for split or prefit
calibration (which would hold rows out of the point model) and cross-conformal "plus"
intervals need all K fold models at prediction time; the baseline is checked against MAPIE's
`CrossConformalRegressor` in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from insurance_pipeline.data.schema import FEATURE_COLUMNS, SEGMENT_COLUMNS, TARGET_COLUMN
from insurance_pipeline.modeling.metrics import IntervalEvaluation


@dataclass(frozen=True)
class IntervalConfig:
    level: float = 0.9
    folds: int = 5
    seed: int = 0
    scale_floor: float = 100.0  # dollars: no interval narrower than 2 * q * floor

    def __post_init__(self):
        if not 0.5 <= self.level < 1:
            raise ValueError(f"interval level {self.level} is not in [0.5, 1)")
        if self.folds < 2:
            raise ValueError(f"interval folds {self.folds} must be at least 2")


@dataclass(frozen=True, eq=False)
class ConformalInterval:
    """What a fitted interval needs at prediction time, and how it was calibrated."""

    level: float
    quantile: float  # q, in units of the scale
    scale_model: object  # fitted on the point model's features -> typical |residual|
    scale_floor: float
    calibration_rows: int
    baseline_half_width: float  # the non-adaptive interval's half width, same residuals

    def scale(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(self.scale_model.predict(X), dtype=float), self.scale_floor)

    def bounds(self, point: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = self.quantile * self.scale(X)
        return point - half, point + half


def build_scale_model(seed: int):
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(
        loss="absolute_error", n_estimators=100, max_depth=3, learning_rate=0.05, random_state=seed
    )


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The k-th smallest score, k = ceil((n + 1) level) (at most n), as MAPIE computes it:
    the finite-sample rank that gives coverage >= level."""
    n = len(scores)
    k = min(n, int(np.ceil((n + 1) * level - 1e-9)))
    return float(np.sort(scores)[k - 1])


def out_of_fold_predictions(
    frame: pd.DataFrame, regressor_spec, folds: int, seed: int
) -> np.ndarray:
    """Each row predicted by the transformer and regressor refitted without its fold."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    from insurance_pipeline.features.transformer import fit_feature_transformer

    predictions = np.empty(len(frame))
    features = list(FEATURE_COLUMNS)
    for train_idx, test_idx in KFold(folds, shuffle=True, random_state=seed).split(frame):
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
        transformer = fit_feature_transformer(train[features])
        model = clone(regressor_spec).fit(
            transformer.transform(train[features]), train[TARGET_COLUMN]
        )
        predictions[test_idx] = model.predict(transformer.transform(test[features]))
    return predictions


def fit_conformal_interval(
    frame: pd.DataFrame, X: np.ndarray, regressor_spec, config: IntervalConfig
) -> ConformalInterval:
    """Calibrate on `frame` (the training rows) whose features under the final transformer
    are `X`. The regressor spec is refitted per fold; nothing here changes the point model."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    y = frame[TARGET_COLUMN].to_numpy(dtype=float)
    residual = np.abs(y - out_of_fold_predictions(frame, regressor_spec, config.folds, config.seed))
    scale_model = build_scale_model(config.seed)
    scale = np.empty(len(y))
    splitter = KFold(config.folds, shuffle=True, random_state=config.seed + 1)
    for train_idx, test_idx in splitter.split(X):
        fold_model = clone(scale_model).fit(X[train_idx], residual[train_idx])
        scale[test_idx] = fold_model.predict(X[test_idx])
    scores = residual / np.maximum(scale, config.scale_floor)
    return ConformalInterval(
        level=config.level,
        quantile=conformal_quantile(scores, config.level),
        scale_model=scale_model.fit(X, residual),
        scale_floor=config.scale_floor,
        calibration_rows=len(y),
        baseline_half_width=conformal_quantile(residual, config.level),
    )


def evaluate_interval(
    interval: ConformalInterval, rows: pd.DataFrame, X: np.ndarray, point: np.ndarray
) -> IntervalEvaluation:
    y = rows[TARGET_COLUMN].to_numpy(dtype=float)
    lower, upper = interval.bounds(point, X)
    inside = (lower <= y) & (y <= upper)
    width = upper - lower
    by_segment = {
        f"{column}={value}": float(inside[(rows[column] == value).to_numpy()].mean())
        for column in SEGMENT_COLUMNS
        for value in sorted(rows[column].unique())
    }
    baseline_inside = np.abs(y - point) <= interval.baseline_half_width
    return IntervalEvaluation(
        level=interval.level,
        coverage=float(inside.mean()),
        mean_width=float(width.mean()),
        median_width=float(np.median(width)),
        coverage_by_segment=by_segment,
        baseline_coverage=float(baseline_inside.mean()),
        baseline_mean_width=2 * interval.baseline_half_width,
    )
