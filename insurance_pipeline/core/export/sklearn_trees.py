"""Adapter: scikit-learn's GradientBoostingRegressor, read through its public fitted
attributes (`init_`, `estimators_`, each `tree_`'s node arrays)."""

from __future__ import annotations

import numpy as np

from insurance_pipeline.core.export.trees import Member, Tree, UnsupportedForServing, type_name

KINDS = ("GradientBoostingRegressor",)


def compile_member(gbr, weight: float) -> Member:
    init = gbr.init_
    if isinstance(init, str) and init == "zero":
        base = 0.0
    elif type(init).__name__ == "DummyRegressor":
        base = float(np.ravel(init.constant_)[0])
    else:
        raise UnsupportedForServing(f"GradientBoostingRegressor init {type_name(init)}")
    scale = weight * gbr.learning_rate
    trees = []
    for stage in gbr.estimators_[:, 0]:
        t = stage.tree_
        leaf = t.children_left < 0
        trees.append(
            Tree(
                feature=np.where(leaf, 0, t.feature),
                threshold=t.threshold.astype(float),
                left=t.children_left,
                right=t.children_right,
                value=np.where(leaf, t.value[:, 0, 0] * scale, 0.0),
                float32=True,  # scikit-learn's trees compare float32 features
            )
        )
    return Member(offset=weight * base, trees=trees)
