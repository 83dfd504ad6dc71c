"""Decision tables (`compiled.decisions`) against walking the same trees (`compiled.Forest`):
random forests of every supported depth, unbalanced trees, repeated thresholds, features read
as float64 or float32: the same leaf in every tree for every row, and the same sums."""

from __future__ import annotations

import numpy as np
import pytest

from insurance_pipeline.compiled import model as compiled
from insurance_pipeline.compiled.decisions import MAX_DEPTH, decision_tables
from insurance_pipeline.compiled.model import Forest

pytestmark = pytest.mark.pure

WIDTH = 5


def random_forest(rng, trees: int, depth: int, X: np.ndarray, **summing) -> Forest:
    """Trees grown at random (each node a split with probability 0.8 above `depth`), split
    values drawn from the data (ties with row values included)."""
    feature, threshold, children, value, roots = [], [], [], [], []

    def node(level: int) -> int:
        index = len(feature)
        feature.append(0), threshold.append(np.inf), children.extend([index, index])
        value.append(float(rng.normal()))
        if level < depth and (level == 0 or rng.random() < 0.8):
            column = int(rng.integers(0, 2 * WIDTH))  # >= WIDTH: the float32 view
            wide = np.hstack([X, X.astype(np.float32)])
            feature[index], threshold[index], value[index] = (
                column,
                float(rng.choice(wide[:, column])),
                0.0,
            )
            left, right = node(level + 1), node(level + 1)
            children[2 * index : 2 * index + 2] = [left, right]
        return index

    for _ in range(trees):
        roots.append(node(0))
    return Forest(
        feature=np.array(feature),
        threshold=np.array(threshold),
        children=np.array(children),
        value=np.array(value),
        roots=np.array(roots),
        depth=depth,
        **summing,
    )


def walked(forest: Forest, X: np.ndarray) -> np.ndarray:
    saved = compiled.DECISION_ROWS
    compiled.DECISION_ROWS = 10**9
    try:
        return forest.predict(X)
    finally:
        compiled.DECISION_ROWS = saved


@pytest.mark.parametrize("depth", range(1, MAX_DEPTH + 1))
@pytest.mark.parametrize("float32_sum", [False, True])
def test_tables_reach_the_leaves_walking_reaches(depth, float32_sum):
    rng = np.random.default_rng(depth)
    X = np.round(rng.normal(size=(700, WIDTH)) * 10, 1)  # rounded: values repeat, thresholds tie
    forest = random_forest(rng, 40, depth, X, base=0.5, weight=0.7, float32_sum=float32_sum)
    tables = decision_tables(forest)
    assert tables is not None
    leaves = tables.leaf_values(np.hstack([X, X.astype(np.float32)]))
    feature, threshold, children, value, node = forest._walk
    wide = np.hstack([X, X.astype(np.float32)])
    node = np.broadcast_to(node, (len(X), len(forest.roots)))
    row = (np.arange(len(X)) * 2 * WIDTH)[:, None]
    for _ in range(depth):
        node = children[node + (wide.ravel()[feature[node] + row] > threshold[node])]
    assert np.array_equal(leaves.T, value[node])  # the very same leaf in every tree
    assert np.allclose(forest.predict(X), walked(forest, X), rtol=1e-13, atol=1e-12)


def test_a_forest_deeper_than_the_tables_is_walked():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, WIDTH))
    deep = random_forest(rng, 5, MAX_DEPTH + 1, X)
    assert decision_tables(deep) is None
    assert np.array_equal(deep.predict(X), walked(deep, X))
