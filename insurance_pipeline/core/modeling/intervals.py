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
3. MAPIE (`SplitConformalRegressor` with `ResidualNormalisedScore`, both prefit) is handed
   those out-of-fold predictions and scales and computes the scores |y - prediction| / scale,
   the conformal quantile q (rank ceil((n + 1) * level)) and every interval bound;
4. the interval at x: prediction ± q * max(scale(x), floor).

Measured (docs/intervals.md): at 90 % it covers as the non-adaptive baseline (split conformal
on absolute residuals) does, about a fifth narrower on average, wide for smokers and narrow
for most non-smokers. MAPIE 1.6 fits its own models only for split calibration (which would
hold rows out of the point model) or cross-conformal "plus" intervals (which need all K fold
models at prediction time), so the cross-fitting is ours and the conformal arithmetic is
MAPIE's; the baseline is also checked against MAPIE's own `CrossConformalRegressor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from insurance_pipeline.core.modeling.metrics import IntervalEvaluation
from insurance_pipeline.core.modeling.pipeline import unfitted_pipeline
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, SEGMENT_COLUMNS, TARGET_COLUMN


@dataclass(frozen=True)
class IntervalConfig:
    level: float = 0.9
    folds: int = 5
    seed: int = 0
    scale_floor: float = 100.0  # dollars: no interval narrower than 2 * q * floor
    # Above this many training rows: split conformal instead of cross-conformal. Cross-
    # conformal refits the spec `folds` times on (folds - 1)/folds of the rows (measured: 317 s
    # at 100,000 rows, 1,356 s at 1,000,000); split conformal fits it once, on the rows outside
    # a calibration set that is large by then (docs/million-rows.md).
    cross_conformal_max_rows: int = 20_000
    calibration_fraction: float = 0.2  # split conformal: this share of the rows ...
    calibration_max_rows: int = 100_000  # ... at most this many, calibrate the interval
    # Above this many calibration rows the scale model is LightGBM's histogram boosting (absolute
    # loss) instead of scikit-learn's exact GradientBoosting (211 s at 640,000 rows, one core).
    exact_scale_max_rows: int = 20_000

    def __post_init__(self):
        if not 0.5 <= self.level < 1:
            raise ValueError(f"interval level {self.level} is not in [0.5, 1)")
        if self.folds < 2:
            raise ValueError(f"interval folds {self.folds} must be at least 2")


class _Lookup(RegressorMixin, BaseEstimator):
    """A prefit "model" returning stored numbers by row number: how MAPIE is handed the
    predictions and scales computed here."""

    def __init__(self, values=None):
        self.values = values

    def fit(self, X=None, y=None):
        self.values_ = np.asarray(self.values, dtype=float)
        self.n_features_in_ = 1
        return self

    def predict(self, X):
        return self.values_[np.asarray(X, dtype=np.int64).ravel()]


@dataclass(frozen=True, eq=False)
class Calibration:
    """The out-of-sample numbers an interval is conformalized on (one per training row)."""

    targets: np.ndarray
    predictions: np.ndarray  # out of fold: from models that never saw the row
    scales: np.ndarray  # cross-fitted and floored

    def mapie_bounds(
        self, level: float, points: np.ndarray, scales: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """MAPIE's split-conformal interval at `points`: normalized by `scales` (prefit
        `ResidualNormalisedScore`), or, with scales None, the absolute-residual baseline."""
        from mapie.conformity_scores import AbsoluteConformityScore, ResidualNormalisedScore
        from mapie.regression import SplitConformalRegressor

        n, points = len(self.targets), np.asarray(points, dtype=float)
        predictions = _Lookup(np.concatenate([self.predictions, points])).fit()
        if scales is None:
            score = AbsoluteConformityScore()
        else:
            scale = _Lookup(np.concatenate([self.scales, scales])).fit()
            score = ResidualNormalisedScore(residual_estimator=scale, prefit=True)
        regressor = SplitConformalRegressor(
            estimator=predictions, confidence_level=level, conformity_score=score, prefit=True
        )
        regressor.conformalize(np.arange(n).reshape(-1, 1), self.targets)
        _, bounds = regressor.predict_interval(np.arange(n, n + len(points)).reshape(-1, 1))
        return bounds[:, 0, 0], bounds[:, 1, 0]


@dataclass(frozen=True, eq=False)
class ConformalInterval:
    """What a fitted interval needs at prediction time, and how it was calibrated."""

    level: float
    quantile: float  # q, in units of the scale (MAPIE's conformal quantile)
    scale_model: object  # fitted on the point model's features -> typical |residual|
    scale_floor: float
    calibration: Calibration
    baseline_half_width: float  # the non-adaptive interval's half width, same residuals
    method: str = "cross-conformal"  # or "split conformal"
    training_rows: int = 0  # the rows the interval was fitted for

    @property
    def calibration_rows(self) -> int:
        return len(self.calibration.targets)

    def scale(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(self.scale_model.predict(X), dtype=float), self.scale_floor)

    def bounds(self, point: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval around `point` at features `X`, as MAPIE computes it."""
        return self.calibration.mapie_bounds(self.level, point, self.scale(X))


def build_scale_model(seed: int, rows: int = 0, exact_max_rows: int = 20_000):
    """Median regression of the absolute residuals: scikit-learn's exact GradientBoosting
    while the rows are few, LightGBM's histogram boosting (the same loss) when they are many."""
    if rows > exact_max_rows:
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            objective="l1",
            n_estimators=100,
            max_depth=3,
            num_leaves=8,
            learning_rate=0.05,
            random_state=seed,
            n_jobs=2,
            verbose=-1,
        )
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(
        loss="absolute_error", n_estimators=100, max_depth=3, learning_rate=0.05, random_state=seed
    )


def calibration_positions(n: int, config: IntervalConfig) -> np.ndarray:
    """Split conformal's calibration rows: a seeded share of the n rows, at most the cap."""
    size = min(int(n * config.calibration_fraction), config.calibration_max_rows)
    chosen = np.random.default_rng(config.seed).choice(n, size=size, replace=False)
    return np.sort(chosen)


def split_predictions(frame: pd.DataFrame, regressor_spec, held: np.ndarray) -> np.ndarray:
    """The rows at `held` predicted by the transformer and regressor fitted on all the others."""
    rest = np.setdiff1d(np.arange(len(frame)), held)
    pipeline = unfitted_pipeline(regressor_spec)
    train = frame.iloc[rest]
    pipeline.fit(train[list(FEATURE_COLUMNS)], train[TARGET_COLUMN].to_numpy(dtype=float))
    return pipeline.predict(frame.iloc[held][list(FEATURE_COLUMNS)])


def out_of_fold_predictions(
    frame: pd.DataFrame, regressor_spec, folds: int, seed: int
) -> np.ndarray:
    """Each row predicted by the transformer and regressor refitted without its fold
    (scikit-learn's `cross_val_predict` over the whole training pipeline)."""
    from sklearn.model_selection import KFold, cross_val_predict

    return cross_val_predict(
        unfitted_pipeline(regressor_spec),
        frame[list(FEATURE_COLUMNS)],
        frame[TARGET_COLUMN].to_numpy(dtype=float),
        cv=KFold(folds, shuffle=True, random_state=seed),
    )


def calibration_residuals(
    frame: pd.DataFrame, regressor_spec, config: IntervalConfig
) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration row positions, their out-of-sample predictions, the method): every row
    out of fold (cross-conformal) while the rows are few, a held-out calibration set (split
    conformal) when they are many."""
    if len(frame) > config.cross_conformal_max_rows:
        held = calibration_positions(len(frame), config)
        return held, split_predictions(frame, regressor_spec, held), "split conformal"
    every = np.arange(len(frame))
    return (
        every,
        out_of_fold_predictions(frame, regressor_spec, config.folds, config.seed),
        ("cross-conformal"),
    )


def fit_conformal_interval(
    frame: pd.DataFrame, X: np.ndarray, regressor_spec, config: IntervalConfig
) -> ConformalInterval:
    """Calibrate on `frame` (the training rows) whose features under the final transformer
    are `X`. The regressor spec is refitted for calibration; nothing here changes the point
    model, which keeps every training row. Either way the coverage guarantee is the split
    conformal one for the model the residuals came from (out-of-fold models, or the one
    fitted without the calibration rows); the served model, fitted on every row, is at least
    as accurate, so its coverage is measured on the holdout by the `interval_coverage` gate."""
    from sklearn.model_selection import KFold, cross_val_predict

    y = frame[TARGET_COLUMN].to_numpy(dtype=float)
    needed = int(np.ceil(1 / (1 - config.level)))
    if len(y) <= needed:
        raise ValueError(
            f"the interval needs more than {needed} training rows at level {config.level}; "
            f"got {len(y)} training rows"
        )
    held, predicted, method = calibration_residuals(frame, regressor_spec, config)
    y_held, X_held = y[held], X[held]
    residual = np.abs(y_held - predicted)
    scale_model = build_scale_model(config.seed, len(held), config.exact_scale_max_rows)
    # cross-fitted: each row's scale comes from a model that never saw the row either
    scale = cross_val_predict(
        scale_model,
        X_held,
        residual,
        cv=KFold(config.folds, shuffle=True, random_state=config.seed + 1),
    )
    calibration = Calibration(
        targets=y_held, predictions=predicted, scales=np.maximum(scale, config.scale_floor)
    )
    unit = np.zeros(1)  # a point at 0 with scale 1: its upper bound is q itself
    return ConformalInterval(
        level=config.level,
        quantile=float(calibration.mapie_bounds(config.level, unit, np.ones(1))[1][0]),
        scale_model=scale_model.fit(X_held, residual),
        scale_floor=config.scale_floor,
        calibration=calibration,
        baseline_half_width=float(calibration.mapie_bounds(config.level, unit, None)[1][0]),
        method=method,
        training_rows=len(y),
    )


def interval_rows(
    interval: ConformalInterval, rows: pd.DataFrame, X: np.ndarray, point: np.ndarray
) -> pd.DataFrame:
    """One line per held-out row: whether the interval and the baseline hold its charges,
    their widths, and the row's segments (what `summarize_interval` pools)."""
    y = rows[TARGET_COLUMN].to_numpy(dtype=float)
    lower, upper = interval.bounds(point, X)
    return pd.DataFrame(
        {
            "inside": (lower <= y) & (y <= upper),
            "width": upper - lower,
            "baseline_inside": np.abs(y - point) <= interval.baseline_half_width,
            "baseline_width": np.full(len(y), 2 * interval.baseline_half_width),
            **{column: rows[column].to_numpy() for column in SEGMENT_COLUMNS},
        }
    )


def summarize_interval(table: pd.DataFrame, level: float) -> IntervalEvaluation:
    """Coverage overall and per segment, and widths, over the lines of `interval_rows`
    (one model's held-out rows, or several folds' concatenated)."""
    inside = table["inside"].to_numpy()
    by_segment = {
        f"{column}={value}": float(inside[(table[column] == value).to_numpy()].mean())
        for column in SEGMENT_COLUMNS
        for value in sorted(table[column].unique())
    }
    return IntervalEvaluation(
        level=level,
        coverage=float(inside.mean()),
        mean_width=float(table["width"].mean()),
        median_width=float(np.median(table["width"])),
        coverage_by_segment=by_segment,
        baseline_coverage=float(table["baseline_inside"].mean()),
        baseline_mean_width=float(table["baseline_width"].mean()),
    )


def evaluate_interval(
    interval: ConformalInterval, rows: pd.DataFrame, X: np.ndarray, point: np.ndarray
) -> IntervalEvaluation:
    return summarize_interval(interval_rows(interval, rows, X, point), interval.level)
