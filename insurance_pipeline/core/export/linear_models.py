"""Adapter: scikit-learn's linear models, through `coef_` and `intercept_`."""

from __future__ import annotations

import numpy as np

from insurance_pipeline.core.export.trees import Member

KINDS = ("ElasticNet", "Lasso", "Ridge", "LinearRegression")


def compile_member(model, weight: float) -> Member:
    coef = np.ravel(np.asarray(model.coef_, dtype=float))
    return Member(offset=weight * float(np.ravel(model.intercept_)[0]), coef=coef * weight)
