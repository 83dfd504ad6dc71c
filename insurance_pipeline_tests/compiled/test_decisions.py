"""Decision tables (`compiled.decisions`) against walking the same trees (`compiled.Forest`):
random forests of every supported depth, unbalanced trees, repeated thresholds, features read
as float64 or float32: the same leaf in every tree for every row, and the same sums."""

from __future__ import annotations

import numpy as np
import pytest

from insurance_pipeline.compiled import model as compiled
from insurance_pipeline.compiled.decisions import MAX_DEPTH, decision_tables
from insurance_pipeline.compiled.model import Forest
from insurance_pipeline_tests.helpers import random_trees

pytestmark = pytest.mark.pure

WIDTH = 5


def random_forest(rng, trees, depth, X, **summing):
    return random_trees(rng, trees, depth, X, WIDTH, **summing)


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
