"""Repeated k-fold cross-validation of the whole pipeline as the DAG builds it: the feature
transformer is fitted inside each fold, then a fresh copy of the chosen regressor spec, and
(optionally) its conformal interval, calibrated on the fold's training rows only."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import RepeatedKFold

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN


def _fold(frame: pd.DataFrame, spec, train_idx, test_idx, interval_config=None) -> dict:
    from insurance_pipeline.features.transformer import fit_feature_transformer

    train, test = frame.iloc[train_idx], frame.iloc[test_idx]
    transformer = fit_feature_transformer(train[list(FEATURE_COLUMNS)])
    X_train = transformer.transform(train[list(FEATURE_COLUMNS)])
    model = clone(spec).fit(X_train, train[TARGET_COLUMN])
    X_test = transformer.transform(test[list(FEATURE_COLUMNS)])
    predicted = model.predict(X_test)
    truth = test[TARGET_COLUMN].to_numpy()
    scores = {
        "r2": float(r2_score(truth, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        "mae": float(mean_absolute_error(truth, predicted)),
    }
    if interval_config is not None:
        from insurance_pipeline.modeling.intervals import fit_conformal_interval, interval_rows

        interval = fit_conformal_interval(train, X_train, spec, interval_config)
        scores["interval_rows"] = interval_rows(interval, test, X_test, predicted)
    return scores


def _mean_std(folds: list[dict], names: tuple[str, ...]) -> dict:
    return {
        name: {
            "mean": float(np.mean([f[name] for f in folds])),
            "std": float(np.std([f[name] for f in folds], ddof=1)),
        }
        for name in names
    }


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
    from joblib import Parallel, delayed

    folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_fold)(frame, spec, tr, te, interval_config) for tr, te in folds.split(frame)
    )
    summary = _mean_std(scores, ("r2", "rmse", "mae"))
    if interval_config is not None:
        from insurance_pipeline.modeling.intervals import summarize_interval

        pooled = pd.concat([s["interval_rows"] for s in scores], ignore_index=True)
        summary["interval"] = asdict(summarize_interval(pooled, interval_config.level))
    return {**summary, "folds": len(scores), "rows": len(frame)}


def nested_cross_validate(
    frame: pd.DataFrame, budget, *, n_splits: int = 5, seed: int = 0, progress=None
) -> dict:
    """The whole TPOT search inside each outer fold: the search space and hyperparameters
    never see the outer test rows. Slow (one full search per fold); a benchmark only."""
    from sklearn.model_selection import KFold

    from insurance_pipeline.features.transformer import fit_feature_transformer
    from insurance_pipeline.modeling.search import run_search

    folds = []
    for k, (train_idx, test_idx) in enumerate(
        KFold(n_splits, shuffle=True, random_state=seed).split(frame)
    ):
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
        transformer = fit_feature_transformer(train[list(FEATURE_COLUMNS)])
        X_train = transformer.transform(train[list(FEATURE_COLUMNS)])
        found = run_search(
            X_train, train[TARGET_COLUMN].to_numpy(), budget, progress=progress or (lambda _: None)
        )
        predicted = found.pipeline.predict(transformer.transform(test[list(FEATURE_COLUMNS)]))
        truth = test[TARGET_COLUMN].to_numpy()
        folds.append(
            {
                "r2": float(r2_score(truth, predicted)),
                "mae": float(mean_absolute_error(truth, predicted)),
                "pipeline": found.description.split("(")[0],
                "search_seconds": round(found.seconds, 1),
            }
        )
        if progress:
            last = folds[-1]
            progress(f"outer fold {k + 1}/{n_splits}: r2 {last['r2']:.4f} MAE {last['mae']:,.0f}")
    return _mean_std(folds, ("r2", "mae")) | {"folds": folds}
