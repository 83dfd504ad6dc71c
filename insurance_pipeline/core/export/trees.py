"""The one tree representation every adapter produces, and the forests built from it.

An adapter turns one fitted estimator into a `Member`: an offset, trees (node arrays:
feature, threshold, left/right children, leaf value), and how they are summed. Members whose
trees are summed in float64 with their blend weight folded into the leaves (scikit-learn,
LightGBM) share one `Forest`; a member summed in float32 (XGBoost) gets its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from insurance_pipeline.compiled.model import Forest


class UnsupportedForServing(TypeError):
    """The pipeline holds something the numpy form cannot express; the message names it."""


def type_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


@dataclass(frozen=True)
class Tree:
    """One tree, nodes numbered from 0; children -1 at leaves."""

    feature: np.ndarray
    threshold: np.ndarray  # go right when x > threshold
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # leaf values (weighted where the member folds its weight in)
    float32: bool  # the library compares the float32-rounded feature

    def on_columns(self, columns: np.ndarray) -> Tree:
        """The same tree reading feature `columns[i]` where it read feature i."""
        leaf = self.left < 0
        feature = np.where(leaf, 0, np.asarray(columns)[np.where(leaf, 0, self.feature)])
        return Tree(feature, self.threshold, self.left, self.right, self.value, self.float32)

    def times(self, factor: float) -> Tree:
        """The same tree, its leaf values times `factor`."""
        return Tree(
            self.feature, self.threshold, self.left, self.right, self.value * factor, self.float32
        )

    @property
    def depth(self) -> int:
        deepest, pending = 0, [(0, 0)]
        while pending:
            node, d = pending.pop()
            if self.left[node] < 0:
                deepest = max(deepest, d)
            else:
                pending += [(self.left[node], d + 1), (self.right[node], d + 1)]
        return deepest


@dataclass(frozen=True)
class Member:
    """One estimator's contribution: `offset + trees (+ X @ coef)`. With `float32_sum` the
    trees are summed as XGBoost does (in float32, from `base`, then times `weight`)."""

    offset: float = 0.0
    trees: list[Tree] = field(default_factory=list)
    coef: np.ndarray | None = None
    float32_sum: bool = False
    base: float = 0.0
    weight: float = 1.0


def forest(trees: list[Tree], n_features: int, **summing) -> Forest:
    """Trees as one `Forest`: their nodes concatenated, leaves made their own children."""
    feature, threshold, children, value, roots = [], [], [], [], []
    start = 0
    for tree in trees:
        size = len(tree.feature)
        leaf = tree.left < 0
        own = np.arange(size)
        feature.append(np.where(leaf, 0, tree.feature + (n_features if tree.float32 else 0)))
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left = np.where(leaf, own, tree.left) + start
        right = np.where(leaf, own, tree.right) + start
        children.append(np.column_stack([left, right]).ravel())
        value.append(np.where(leaf, tree.value, 0.0))
        roots.append(start)
        start += size
    return Forest(
        feature=np.concatenate(feature).astype(np.int64),
        threshold=np.concatenate(threshold).astype(np.float64),
        children=np.concatenate(children).astype(np.int64),
        value=np.concatenate(value).astype(np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        depth=max(t.depth for t in trees),
        **summing,
    )
