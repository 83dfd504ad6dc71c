"""Cross-validation of the whole pipeline as the DAG builds it, with scikit-learn's
`cross_validate`: the feature transformer is fitted inside each fold, then a fresh copy of the
chosen regressor spec, and (optionally) its conformal interval, calibrated on the fold's
training rows only. Nested CV runs the whole TPOT search inside each outer fold."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.model_selection import cross_validate as sklearn_cross_validate

from insurance_pipeline.core.modeling.pipeline import FEATURES_STEP, unfitted_pipeline
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN

SCORING = {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}


class FoldModel(RegressorMixin, BaseEstimator):
    """The training pipeline for one fold: transformer + a copy of `spec`, and with
    `interval_config` the conformal interval calibrated on the same rows."""

    def __init__(self, spec=None, interval_config=None):
        self.spec = spec
        self.interval_config = interval_config

    def fit(self, X: pd.DataFrame, y):
        self.pipeline_ = unfitted_pipeline(self.spec).fit(X, y)
        self.interval_ = None
        if self.interval_config is not None:
            from insurance_pipeline.core.modeling.intervals import fit_conformal_interval

            rows = X.assign(**{TARGET_COLUMN: np.asarray(y, dtype=float)})
            features = self.pipeline_.named_steps[FEATURES_STEP].transform(X)
            self.interval_ = fit_conformal_interval(rows, features, self.spec, self.interval_config)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(X)


class SearchedModel(RegressorMixin, BaseEstimator):
    """The transformer, then the whole TPOT search on the fold's rows (nested CV)."""

    def __init__(self, budget=None, progress=None):
        self.budget = budget
        self.progress = progress

    def fit(self, X: pd.DataFrame, y):
        from insurance_pipeline.core.features.transformer import fit_feature_transformer
        from insurance_pipeline.core.modeling.search import run_search

        self.transformer_ = fit_feature_transformer(X)
        self.search_ = run_search(
            self.transformer_.transform(X),
            np.asarray(y, dtype=float),
            self.budget,
            progress=self.progress or (lambda _: None),
        )
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.search_.pipeline.predict(self.transformer_.transform(X))


def _mean_std(values: dict[str, np.ndarray]) -> dict:
    return {
        name: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))}
        for name, v in values.items()
    }


def _fold_scores(result: dict) -> dict[str, np.ndarray]:
    """scikit-learn's test scores, with the error scorers' signs turned back to errors."""
    return {name: result[f"test_{name}"] * (1 if name == "r2" else -1) for name in SCORING}


def _pooled_interval(frame: pd.DataFrame, result: dict, level: float) -> dict:
    from insurance_pipeline.core.modeling.intervals import interval_rows, summarize_interval

    tables = []
    for model, test in zip(result["estimator"], result["indices"]["test"], strict=True):
        rows = frame.iloc[test]
        X = model.pipeline_.named_steps[FEATURES_STEP].transform(rows[list(FEATURE_COLUMNS)])
        tables.append(interval_rows(model.interval_, rows, X, model.predict(rows)))
    return asdict(summarize_interval(pd.concat(tables, ignore_index=True), level))


def cross_validate(
    frame: pd.DataFrame,
    spec,
    *,
    n_splits: int = 5,
    n_repeats: int = 10,
    seed: int = 0,
    n_jobs: int = 2,
    interval_config=None,
) -> dict:
    """Mean and standard deviation of r2, RMSE and MAE over n_splits x n_repeats folds; with
    `interval_config`, the interval's pooled coverage and widths beside the baseline's."""
    result = sklearn_cross_validate(
        FoldModel(spec, interval_config),
        frame[list(FEATURE_COLUMNS)],
        frame[TARGET_COLUMN].to_numpy(dtype=float),
        cv=RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed),
        scoring=SCORING,
        n_jobs=n_jobs,
        return_estimator=interval_config is not None,
        return_indices=interval_config is not None,
    )
    summary = _mean_std(_fold_scores(result))
    if interval_config is not None:
        summary["interval"] = _pooled_interval(frame, result, interval_config.level)
    return {**summary, "folds": len(result["test_r2"]), "rows": len(frame)}


def nested_cross_validate(
    frame: pd.DataFrame, budget, *, n_splits: int = 5, seed: int = 0, progress=None
) -> dict:
    """The whole TPOT search inside each outer fold: the search space and hyperparameters
    never see the outer test rows. Slow (one full search per fold); a benchmark only."""
    result = sklearn_cross_validate(
        SearchedModel(budget, progress),
        frame[list(FEATURE_COLUMNS)],
        frame[TARGET_COLUMN].to_numpy(dtype=float),
        cv=KFold(n_splits, shuffle=True, random_state=seed),
        scoring={"r2": "r2", "mae": "neg_mean_absolute_error"},
        return_estimator=True,
    )
    r2, mae = result["test_r2"], -result["test_mae"]
    folds = [
        {
            "r2": float(r2[k]),
            "mae": float(mae[k]),
            "pipeline": model.search_.description.split("(")[0],
            "search_seconds": round(model.search_.seconds, 1),
        }
        for k, model in enumerate(result["estimator"])
    ]
    return _mean_std({"r2": r2, "mae": mae}) | {"folds": folds}
