"""A trained pipeline as plain numpy arrays: the form the service loads and evaluates.

Export (`core.export`) turns the fitted pipeline (featuretools DFS, imputer, encoders, and a
scikit-learn / LightGBM / XGBoost booster, a blend of them or a linear model) into a
`CompiledModel`. Evaluating it needs numpy only:

- `Encoder`: the DFS features (`compiled.dfs`), the imputer's means and the encoders'
  category codes;
- `Regressor`: `offset + forests + linear`. A `Forest` holds every tree of its boosters in
  one set of node arrays, walked for all trees at once, one level a step. Each split reads
  either the float64 feature (LightGBM) or the feature rounded to float32 first (scikit-learn
  and XGBoost do so); leaf values already carry their learning rate and blend weight;
- `CompiledInterval`: prediction ± quantile × max(scale(x), floor), the scale being another
  `Regressor` over the same features.

Two ways in: `predict(rows)` for a batch (vectorized) and `predict_row(row)` for one row
(plain Python floats, the fewest numpy calls). How the arrays are stored: `compiled.npz`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from insurance_pipeline.compiled.decisions import DecisionTables, decision_tables
from insurance_pipeline.compiled.dfs import DfsProgram
from insurance_pipeline.domain.schema import SMOKER_CATEGORY

DECISION_ROWS = 16  # from this many rows a batch is decided by tables, not walked


@dataclass(frozen=True, eq=False)
class Encoder:
    """Validated inputs -> the regressor's feature rows: DFS features (imputed), then one
    ordinal code column per entry of `codes`."""

    dfs: DfsProgram
    means: np.ndarray  # float64 (dfs features,): the imputer's fitted means
    codes: tuple[tuple[str, Mapping[str, float]], ...]  # (field, category -> code), in order

    @property
    def n_features(self) -> int:
        return len(self.means) + len(self.codes)

    def encode_row(self, row: Mapping) -> np.ndarray:
        dfs = self.dfs.compute_row([float(row[c]) for c in self.dfs.input_columns])
        features = [m if v != v else v for v, m in zip(dfs, self._means, strict=True)]
        features += [table[_category(field, row[field])] for field, table in self.codes]
        return np.array(features)

    def encode(self, rows: Sequence[Mapping]) -> np.ndarray:
        inputs = np.array(
            [[float(r[c]) for c in self.dfs.input_columns] for r in rows], dtype=float
        )
        dfs = self.dfs.compute(inputs)
        dfs = np.where(np.isnan(dfs), self.means, dfs)
        codes = [
            np.array([table[_category(field, r[field])] for r in rows], dtype=float)
            for field, table in self.codes
        ]
        return np.column_stack([dfs, *codes]) if codes else dfs

    @cached_property
    def _means(self) -> list[float]:
        return self.means.tolist()


def _category(field: str, value) -> str:
    return SMOKER_CATEGORY[value] if field == "smoker" else value


@dataclass(frozen=True, eq=False)
class Forest:
    """Trees as flat node arrays. Node i: go right when x[feature[i]] > threshold[i];
    children[2i] / children[2i+1] are its left / right child; a leaf is its own child with
    threshold +inf, so walking `depth` levels ends on a leaf in every tree.

    The sum is `weight * (base + leaves)`. With `float32_sum` it is accumulated as XGBoost
    does: in float32, from the base, tree by tree (else leaves carry the weight already)."""

    feature: np.ndarray  # int64 (nodes,): < n_features: float64 value; else float32-rounded
    threshold: np.ndarray  # float64 (nodes,)
    children: np.ndarray  # int64 (2 * nodes,)
    value: np.ndarray  # float64 (nodes,): leaf value, 0 for splits
    roots: np.ndarray  # int64 (trees,)
    depth: int
    base: float = 0.0
    weight: float = 1.0
    float32_sum: bool = False

    @cached_property
    def _walk(self) -> tuple[np.ndarray, ...]:
        """Arrays indexed by 2 * node, so that a level costs one add less: feature,
        threshold, 2 * children (left at 2i, right at 2i + 1), leaf value, 2 * roots."""
        feature, threshold = np.repeat(self.feature, 2), np.repeat(self.threshold, 2)
        value = np.repeat(self.value, 2)
        return feature, threshold, 2 * self.children, value, 2 * self.roots

    @cached_property
    def _decisions(self) -> DecisionTables | None:
        return decision_tables(self)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of X (rows, features): a batch through the decision
        tables (`compiled.decisions`), the same leaves as walking, at a fraction of the cost."""
        tables = self._decisions if len(X) >= DECISION_ROWS else None
        if tables is not None:
            leaves = tables.leaf_values(np.hstack([X, X.astype(np.float32)]))
            return self._total(leaves.T)
        n, width = X.shape
        feature, threshold, children, value, roots = self._walk
        wide = np.hstack([X, X.astype(np.float32)]).ravel()
        row_start = (np.arange(n) * 2 * width)[:, None]
        node = np.broadcast_to(roots, (n, len(roots)))
        for _ in range(self.depth):
            node = children[node + (wide[feature[node] + row_start] > threshold[node])]
        return self._total(value[node])

    def predict_row(self, x: np.ndarray) -> float:
        """The same for one row (features,)."""
        feature, threshold, children, value, node = self._walk
        wide = np.concatenate((x, x.astype(np.float32)))
        for _ in range(self.depth):
            node = children[node + (wide[feature[node]] > threshold[node])]
        return float(self._total(value[node][None, :])[0])

    def _total(self, leaves: np.ndarray) -> np.ndarray:
        if not self.float32_sum:
            return self.weight * (self.base + leaves.sum(axis=1))
        start = np.full((leaves.shape[0], 1), self.base, dtype=np.float32)
        total = np.cumsum(np.hstack([start, leaves.astype(np.float32)]), axis=1, dtype=np.float32)
        return self.weight * total[:, -1].astype(np.float64)


@dataclass(frozen=True, eq=False)
class Regressor:
    """`offset + sum of forests + X @ coef`: what every supported estimator compiles to."""

    offset: float  # weighted base scores and intercepts
    forests: tuple[Forest, ...] = ()
    coef: np.ndarray | None = None  # float64 (features,), weighted linear coefficients

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.full(X.shape[0], self.offset)
        for forest in self.forests:
            out += forest.predict(X)
        if self.coef is not None:
            out += X @ self.coef
        return out

    def predict_row(self, x: np.ndarray) -> float:
        out = self.offset
        for forest in self.forests:
            out += forest.predict_row(x)
        if self.coef is not None:
            out += float(x @ self.coef)
        return out

    @property
    def n_trees(self) -> int:
        return sum(len(f.roots) for f in self.forests)

    @property
    def depth(self) -> int:
        return max((f.depth for f in self.forests), default=0)


@dataclass(frozen=True, eq=False)
class CompiledInterval:
    """prediction ± quantile * max(scale(x), floor); `scale` reads the same features."""

    level: float
    quantile: float
    floor: float
    scale: Regressor

    def half_widths(self, X: np.ndarray) -> np.ndarray:
        return self.quantile * np.maximum(self.scale.predict(X), self.floor)

    def half_width_row(self, x: np.ndarray) -> float:
        return self.quantile * max(self.scale.predict_row(x), self.floor)


class Predictions(NamedTuple):
    """Charges and the interval's bounds (NaN without an interval), one entry per row."""

    charges: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True, eq=False)
class CompiledModel:
    encoder: Encoder
    regressor: Regressor
    interval: CompiledInterval | None = None

    def predict(self, rows: Sequence[Mapping]) -> Predictions:
        """Charges (and bounds) for rows of validated inputs (mappings of the six fields)."""
        X = self.encoder.encode(rows)
        point = self.regressor.predict(X)
        if self.interval is None:
            nan = np.full(len(point), np.nan)
            return Predictions(point, nan, nan)
        half = self.interval.half_widths(X)
        return Predictions(point, point - half, point + half)

    def predict_row(self, row: Mapping) -> tuple[float, float, float]:
        """(charges, lower, upper) for one row: equal to `predict([row])`, faster."""
        x = self.encoder.encode_row(row)
        point = self.regressor.predict_row(x)
        if self.interval is None:
            return point, float("nan"), float("nan")
        half = self.interval.half_width_row(x)
        return point, point - half, point + half

    @property
    def n_trees(self) -> int:
        return self.regressor.n_trees

    @property
    def depth(self) -> int:
        return self.regressor.depth


# At export and again at load, the model must reproduce the full training pipeline's
# predictions on the reference rows to this many dollars.
REFERENCE_TOLERANCE = 1e-6


def reference_mismatch(
    model: CompiledModel, rows: Sequence[Mapping], expected, lower=None, upper=None
) -> str | None:
    """None when `model` reproduces `expected` (and the interval bounds, when given) on
    `rows`; otherwise what differs."""
    found = model.predict(rows)
    for name, got, want in (
        ("charges", found.charges, expected),
        ("lower", found.lower, lower),
        ("upper", found.upper, upper),
    ):
        if want is None:
            continue
        problem = _mismatch(name, rows, got, np.asarray(want, dtype=float))
        if problem:
            return problem
    return None


def _mismatch(name: str, rows, got: np.ndarray, expected: np.ndarray) -> str | None:
    if got.shape != expected.shape:
        return f"{got.shape[0]} predictions for {expected.shape[0]} reference rows"
    error = np.abs(got - expected)
    worst = int(np.argmax(error)) if len(error) else 0
    if len(error) and not error[worst] <= REFERENCE_TOLERANCE:
        return (
            f"{int((error > REFERENCE_TOLERANCE).sum())} of {len(error)} reference rows differ "
            f"by more than {REFERENCE_TOLERANCE:g} ({name}); worst: row {rows[worst]} gives "
            f"{got[worst]!r}, the training pipeline {expected[worst]!r}"
        )
    return None
