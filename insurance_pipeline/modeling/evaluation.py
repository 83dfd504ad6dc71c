"""Repeated k-fold cross-validation of the whole pipeline as the DAG builds it: the feature
transformer is fitted inside each fold, then a fresh copy of the chosen regressor spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import RepeatedKFold

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN


def _fold(frame: pd.DataFrame, spec, train_idx, test_idx) -> dict[str, float]:
    from insurance_pipeline.features.transformer import fit_feature_transformer

    train, test = frame.iloc[train_idx], frame.iloc[test_idx]
    transformer = fit_feature_transformer(train[list(FEATURE_COLUMNS)])
    model = clone(spec).fit(
        transformer.transform(train[list(FEATURE_COLUMNS)]), train[TARGET_COLUMN]
    )
    predicted = model.predict(transformer.transform(test[list(FEATURE_COLUMNS)]))
    truth = test[TARGET_COLUMN].to_numpy()
    return {
        "r2": float(r2_score(truth, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        "mae": float(mean_absolute_error(truth, predicted)),
    }


def cross_validate(
    frame: pd.DataFrame,
    spec,
    *,
    n_splits: int = 5,
    n_repeats: int = 10,
    seed: int = 0,
    n_jobs: int = 2,
) -> dict:
    """Mean and standard deviation of r2, RMSE and MAE over n_splits x n_repeats folds."""
    from joblib import Parallel, delayed

    folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_fold)(frame, spec, tr, te) for tr, te in folds.split(frame)
    )
    summary = {
        name: {
            "mean": float(np.mean([s[name] for s in scores])),
            "std": float(np.std([s[name] for s in scores], ddof=1)),
        }
        for name in ("r2", "rmse", "mae")
    }
    return {**summary, "folds": len(scores), "rows": len(frame)}
