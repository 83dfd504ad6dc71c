"""Turns validated inputs into charges.

The artifact's pipeline takes a DataFrame, and scikit-learn/LightGBM wrappers validate their
input on every call: for one row that costs ten times the trees themselves. `Predictor`
compiles the fitted feature transformer into a few numpy operations (the same DFS twin, the
imputer's means, the encoders' category codes) and the regressor into direct calls of its
fitted trees (LightGBM/XGBoost boosters, scikit-learn's stage predictor, a voting average of
those). Once, at load, it checks that this reproduces `pipeline.predict` on probe rows to
1e-6; otherwise it keeps the pipeline path.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from insurance_pipeline.features.numpy_dfs import NumpyDeepFeatureSynthesis

log = logging.getLogger(__name__)

FIELDS = ("age", "sex", "bmi", "children", "smoker", "region")


def _frame(rows: Sequence[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(FIELDS))
    frame["smoker"] = frame["smoker"].map({True: "yes", False: "no"})
    return frame


class _CompiledFeatures:
    def __init__(self, features):
        dfs_pipeline = features.named_transformers_["dfs"]
        self.dfs: NumpyDeepFeatureSynthesis = dfs_pipeline.named_steps["dfs"]
        if not isinstance(self.dfs, NumpyDeepFeatureSynthesis):
            raise TypeError("the artifact's DFS step is not the numpy twin")
        self.means = np.asarray(dfs_pipeline.named_steps["impute"].statistics_, dtype=float)
        smoker = list(features.named_transformers_["smoker"].categories_[0])
        sex, region = features.named_transformers_["categorical"].categories_
        self.smoker_code = {True: float(smoker.index("yes")), False: float(smoker.index("no"))}
        self.sex_code = {v: float(i) for i, v in enumerate(sex)}
        self.region_code = {v: float(i) for i, v in enumerate(region)}
        order = [name for name, _, _ in features.transformers_ if name != "remainder"]
        if order != ["dfs", "smoker", "categorical"]:
            raise TypeError(f"unexpected transformer layout {order}")

    def transform(self, rows: Sequence[dict]) -> np.ndarray:
        numeric = np.array([[r["age"], r["bmi"], r["children"]] for r in rows], dtype=float)
        dfs = self.dfs.transform_array(numeric)
        missing = np.isnan(dfs)
        if missing.any():
            dfs[missing] = np.take(self.means, np.nonzero(missing)[1])
        codes = np.array(
            [
                [
                    self.smoker_code[r["smoker"]],
                    self.sex_code[r["sex"]],
                    self.region_code[r["region"]],
                ]
                for r in rows
            ]
        )
        return np.hstack([dfs, codes])


def compile_regressor(regressor) -> Callable[[np.ndarray], np.ndarray]:
    """A function X -> predictions equal to `regressor.predict(X)`, minus per-call overhead.
    Unknown estimators keep their own `predict`."""
    name = type(regressor).__name__
    if name == "VotingRegressor":
        members = [compile_regressor(m) for m in regressor.estimators_]
        weights = regressor._weights_not_none

        def vote(X):
            return np.average(np.column_stack([m(X) for m in members]), axis=1, weights=weights)

        return vote
    if name == "LGBMRegressor":
        booster = regressor.booster_
        return lambda X: booster.predict(X, num_threads=1)
    if name == "XGBRegressor":
        booster = regressor.get_booster()
        return lambda X: booster.inplace_predict(X)
    if name == "GradientBoostingRegressor" and type(regressor.init_).__name__ == "DummyRegressor":
        from sklearn.ensemble._gradient_boosting import predict_stages

        start = float(np.ravel(regressor.init_.constant_)[0])
        stages, rate = regressor.estimators_, regressor.learning_rate

        def boost(X):
            raw = np.full((X.shape[0], 1), start)
            predict_stages(stages, np.ascontiguousarray(X, dtype=np.float32), rate, raw)
            return raw.ravel()

        return boost
    return regressor.predict


def probe_rows() -> list[dict]:
    """Boundary and typical inputs, including children = 0 (division by zero)."""
    rows = []
    for age, bmi, children, smoker, sex, region in itertools.product(
        (18, 40, 65),
        (15.0, 30.5, 50.0),
        (0, 2, 5),
        (True, False),
        ("male", "female"),
        ("southwest", "northeast"),
    ):
        rows.append(
            {
                "age": age,
                "sex": sex,
                "bmi": bmi,
                "children": children,
                "smoker": smoker,
                "region": region,
            }
        )
    return rows


class Predictor:
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._compiled: _CompiledFeatures | None = None
        self.regress: Callable[[np.ndarray], np.ndarray] | None = None
        try:
            compiled = _CompiledFeatures(pipeline.named_steps["features"])
            regress = compile_regressor(pipeline.named_steps["regressor"])
            rows = probe_rows()
            fast = regress(compiled.transform(rows))
            slow = pipeline.predict(_frame(rows))
            if np.allclose(fast, slow, rtol=1e-9, atol=1e-6):
                self._compiled, self.regress = compiled, regress
            else:
                log.warning("compiled features disagree with the pipeline; using the pipeline")
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            log.warning("cannot compile the feature transformer (%s); using the pipeline", error)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def predict(self, rows: Sequence[dict]) -> np.ndarray:
        if self._compiled is not None:
            return self.regress(self._compiled.transform(rows))
        return self.pipeline.predict(_frame(rows))
