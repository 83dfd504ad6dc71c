"""The forests as native code (`compiled.native`): built from the C the artifact ships, they
reach the very leaves walking the trees reaches, for random forests of every depth, in float32
(XGBoost's order) and float64 sums, one row or many; the artifact pins the C; and where no
library can be built or the library is refused, numpy serves, and says why."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from insurance_pipeline.compiled import native
from insurance_pipeline.compiled.model import CompiledModel, Forest, Regressor
from insurance_pipeline_tests.helpers import random_trees

pytestmark = pytest.mark.pure

WIDTH = 6
needs_compiler = pytest.mark.skipif(native.compiler() is None, reason="no C compiler here")


class _Encoder:
    """Feature rows as they are (the forests' conformance is about the trees)."""

    n_features = WIDTH

    def encode(self, rows):
        return np.asarray(rows, dtype=float)

    def encode_row(self, row):
        return np.asarray(row, dtype=float)


def model_of(*forests: Forest) -> CompiledModel:
    return CompiledModel(_Encoder(), Regressor(offset=1.5, forests=forests))


def built(model: CompiledModel, tmp_path) -> CompiledModel:
    source = tmp_path / native.SOURCE_FILE
    source.write_text(native.c_source(model))
    library = native.native_library(source, workdir=tmp_path)
    return native.with_library(model, library)


@needs_compiler
@pytest.mark.parametrize("depth", [1, 2, 4, 7, 10])
@pytest.mark.parametrize("float32_sum", [False, True])
def test_native_forests_reach_the_same_leaves(depth, float32_sum, tmp_path):
    rng = np.random.default_rng(depth + 100 * float32_sum)
    X = np.round(rng.normal(size=(300, WIDTH)) * 10, 1)  # values repeat: thresholds tie
    forests = [
        random_trees(rng, 37, depth, X, WIDTH, base=0.25, weight=0.6, float32_sum=float32_sum),
        random_trees(rng, 9, max(1, depth - 1), X, WIDTH),
    ]
    X[::7, 2] = np.inf  # extreme values go where walking sends them
    model = model_of(*forests)
    fast = built(model, tmp_path)
    numpy_batch, native_batch = model.predict(X).charges, fast.predict(X).charges
    if float32_sum:  # XGBoost's float32 order, exactly: the same float32 sum
        first, numpy_first = fast.regressor.forests[0], model.regressor.forests[0]
        assert np.array_equal(first.predict(X), numpy_first.predict(X))
    np.testing.assert_allclose(native_batch, numpy_batch, rtol=1e-12, atol=1e-9)
    for row in X[:25]:
        one = fast.predict_row(row)[0]
        assert one == pytest.approx(model.predict_row(row)[0], rel=1e-12, abs=1e-9)
    # every block size and lane remainder of the C walk gives the same rows
    for n in (1, 7, 8, 9, 63, 64, 65, 130):
        np.testing.assert_allclose(fast.predict(X[:n]).charges, numpy_batch[:n], rtol=1e-12)


@needs_compiler
def test_the_source_is_deterministic_and_holds_every_forest(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, WIDTH))
    model = model_of(random_trees(rng, 5, 3, X, WIDTH), random_trees(rng, 4, 2, X, WIDTH))
    assert native.c_source(model) == native.c_source(model)
    library = built(model, tmp_path).regressor.forests[0].library
    assert library.forests == 2
    other = model_of(random_trees(rng, 5, 3, X, WIDTH))
    with pytest.raises(native.NativeUnavailable, match="holds 2 forests, the model 1"):
        native.with_library(other, library)


def test_without_a_compiler_there_is_no_library_and_the_reason(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, WIDTH))
    source = tmp_path / native.SOURCE_FILE
    source.write_text(native.c_source(model_of(random_trees(rng, 3, 2, X, WIDTH))))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(native.NativeUnavailable, match="could not build model.c"):
        native.native_library(source, workdir=tmp_path)
    with pytest.raises(native.NativeUnavailable, match="has no model.c"):
        native.native_library(tmp_path / "missing.c")


def test_a_native_forest_keeps_the_numpy_forests_arrays():
    """A native forest keeps every array of its forest (the decision tables, the npz)."""
    fields = {f.name for f in dataclasses.fields(Forest)}
    assert fields <= {f.name for f in dataclasses.fields(native.NativeForest)}
