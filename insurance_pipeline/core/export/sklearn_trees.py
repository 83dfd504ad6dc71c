"""Adapter: scikit-learn's trees, read through their public fitted attributes (`init_`,
`estimators_`, each `tree_`'s node arrays): GradientBoostingRegressor (a sum of stages),
RandomForestRegressor and ExtraTreesRegressor (the mean of their trees), and one
DecisionTreeRegressor."""

from __future__ import annotations

import numpy as np

from insurance_pipeline.core.export.trees import Member, Tree, UnsupportedForServing, type_name

BOOSTED = ("GradientBoostingRegressor",)
AVERAGED = ("RandomForestRegressor", "ExtraTreesRegressor")
SINGLE = ("DecisionTreeRegressor",)
KINDS = BOOSTED + AVERAGED + SINGLE


def _tree(fitted, scale: float) -> Tree:
    """One fitted tree, leaves times `scale`. The features reaching it are imputed first
    (the compiled Encoder), so where missing values would go never matters."""
    t = fitted.tree_
    leaf = t.children_left < 0
    return Tree(
        feature=np.where(leaf, 0, t.feature),
        threshold=t.threshold.astype(float),
        left=t.children_left,
        right=t.children_right,
        value=np.where(leaf, t.value[:, 0, 0] * scale, 0.0),
        float32=True,  # scikit-learn's trees compare float32 features
    )


def compile_member(model, weight: float) -> Member:
    kind = type(model).__name__
    if kind in SINGLE:
        return Member(trees=[_tree(model, weight)])
    if kind in AVERAGED:
        if model.n_outputs_ != 1:
            raise UnsupportedForServing(f"{type_name(model)} with several outputs")
        scale = weight / len(model.estimators_)
        return Member(trees=[_tree(tree, scale) for tree in model.estimators_])
    init = model.init_
    if isinstance(init, str) and init == "zero":
        base = 0.0
    elif type(init).__name__ == "DummyRegressor":
        base = float(np.ravel(init.constant_)[0])
    else:
        raise UnsupportedForServing(f"GradientBoostingRegressor init {type_name(init)}")
    scale = weight * model.learning_rate
    return Member(
        offset=weight * base, trees=[_tree(stage, scale) for stage in model.estimators_[:, 0]]
    )
