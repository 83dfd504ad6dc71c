"""Adapter: scikit-learn's linear models, through `coef_` and `intercept_`: every one whose
prediction is `X @ coef_ + intercept_`, as TPOT's spaces choose them."""

from __future__ import annotations

import numpy as np

from insurance_pipeline.core.export.trees import Member

KINDS = (
    "ARDRegression",
    "BayesianRidge",
    "ElasticNet",
    "ElasticNetCV",
    "HuberRegressor",
    "Lars",
    "LarsCV",
    "Lasso",
    "LassoCV",
    "LassoLars",
    "LassoLarsCV",
    "LinearRegression",
    "LinearSVR",
    "OrthogonalMatchingPursuit",
    "Ridge",
    "RidgeCV",
    "SGDRegressor",
)


def compile_member(model, weight: float) -> Member:
    coef = np.ravel(np.asarray(model.coef_, dtype=float))
    intercept = float(np.ravel(np.asarray(model.intercept_, dtype=float))[0])
    return Member(offset=weight * intercept, coef=coef * weight)
