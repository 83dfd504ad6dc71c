"""A trained pipeline as plain numpy arrays: the form the service loads and evaluates.

Export (`modeling.export`) turns the fitted pipeline (featuretools DFS, imputer, encoders,
and a scikit-learn / LightGBM / XGBoost booster, a blend of them or a linear model) into a
`CompiledModel`. Evaluating it needs numpy only:

- `Encoder`: the DFS features as one numpy operation per primitive, the imputer's means and
  the encoders' category codes;
- `Forest`: every tree of every booster in one set of node arrays, walked for all trees at
  once, one level a step. Each split reads either the float64 feature (LightGBM) or the
  feature rounded to float32 first (scikit-learn and XGBoost do so); leaf values already
  carry their learning rate and blend weight;
- `Linear`: a weighted coefficient vector.

The prediction is `offset + forest + linear`. Arrays are saved with `numpy.savez` and read
with `allow_pickle=False`: loading a model runs no code from the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from insurance_pipeline.data.schema import FEATURE_COLUMNS, SMOKER_CATEGORY
from insurance_pipeline.features.numpy_dfs import DfsProgram


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

    def encode_row(self, row: Mapping) -> list[float]:
        dfs = self.dfs.compute_row([float(row[c]) for c in self.dfs.input_columns])
        features = [m if v != v else v for v, m in zip(dfs, self._means, strict=True)]
        features += [table[_category(field, row[field])] for field, table in self.codes]
        return features

    def encode(self, rows: Sequence[Mapping]) -> np.ndarray:
        return np.array([self.encode_row(r) for r in rows], dtype=float).reshape(
            len(rows), self.n_features
        )

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

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of X (rows, features)."""
        n, width = X.shape
        feature, threshold, children, value, roots = self._walk
        wide = np.hstack([X, X.astype(np.float32)]).ravel()
        row_start = (np.arange(n) * 2 * width)[:, None]
        node = np.broadcast_to(roots, (n, len(roots)))
        for _ in range(self.depth):
            node = children[node + (wide[feature[node] + row_start] > threshold[node])]
        return self._total(value[node])

    def predict_one(self, x: np.ndarray) -> float:
        """The same for one row (features,), with the fewest numpy calls."""
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
class Linear:
    coef: np.ndarray  # float64 (features,), weighted; intercepts are in the model's offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef


@dataclass(frozen=True, eq=False)
class CompiledModel:
    encoder: Encoder
    offset: float  # weighted base scores and intercepts
    forests: tuple[Forest, ...] = ()
    linear: Linear | None = None

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        out = np.full(X.shape[0], self.offset)
        for forest in self.forests:
            out += forest.predict(X)
        if self.linear is not None:
            out += self.linear.predict(X)
        return out

    def predict(self, rows: Sequence[Mapping]) -> np.ndarray:
        """Charges for rows of validated inputs (mappings with the six input fields)."""
        return self.predict_features(self.encoder.encode(rows))

    def predict_one(self, row: Mapping) -> float:
        """Charges for one row: equal to `predict([row])[0]`, in about half the time."""
        return self.predict_feature_row(np.array(self.encoder.encode_row(row)))

    def predict_feature_row(self, x: np.ndarray) -> float:
        """One row of features (features,) -> its prediction."""
        out = self.offset
        for forest in self.forests:
            out += forest.predict_one(x)
        if self.linear is not None:
            out += float(x @ self.linear.coef)
        return out

    @property
    def n_trees(self) -> int:
        return sum(len(f.roots) for f in self.forests)

    @property
    def depth(self) -> int:
        return max((f.depth for f in self.forests), default=0)

    # -- storage: flat named arrays -------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        enc = self.encoder
        arrays = {
            "dfs_inputs": np.asarray(enc.dfs.input_columns),
            "dfs_ops": enc.dfs.ops,
            "dfs_left": enc.dfs.left,
            "dfs_right": enc.dfs.right,
            "impute_means": enc.means,
            "code_fields": np.asarray([field for field, _ in enc.codes]),
            "offset": np.float64(self.offset),
        }
        for field, table in enc.codes:
            arrays[f"codes_{field}_keys"] = np.asarray(list(table))
            arrays[f"codes_{field}_values"] = np.asarray(list(table.values()), dtype=float)
        arrays["forests"] = np.int64(len(self.forests))
        for i, f in enumerate(self.forests):
            arrays |= {
                f"forest{i}_feature": f.feature,
                f"forest{i}_threshold": f.threshold,
                f"forest{i}_children": f.children,
                f"forest{i}_value": f.value,
                f"forest{i}_roots": f.roots,
                f"forest{i}_depth": np.int64(f.depth),
                f"forest{i}_base": np.float64(f.base),
                f"forest{i}_weight": np.float64(f.weight),
                f"forest{i}_float32_sum": np.bool_(f.float32_sum),
            }
        if self.linear is not None:
            arrays["linear_coef"] = self.linear.coef
        return arrays

    @classmethod
    def from_arrays(cls, a: Mapping[str, np.ndarray]) -> CompiledModel:
        dfs = DfsProgram(
            tuple(a["dfs_inputs"].tolist()), a["dfs_ops"], a["dfs_left"], a["dfs_right"]
        )
        codes = tuple(
            (
                field,
                dict(
                    zip(
                        a[f"codes_{field}_keys"].tolist(),
                        a[f"codes_{field}_values"].tolist(),
                        strict=True,
                    )
                ),
            )
            for field in a["code_fields"].tolist()
        )
        forests = tuple(
            Forest(
                a[f"forest{i}_feature"],
                a[f"forest{i}_threshold"],
                a[f"forest{i}_children"],
                a[f"forest{i}_value"],
                a[f"forest{i}_roots"],
                int(a[f"forest{i}_depth"]),
                float(a[f"forest{i}_base"]),
                float(a[f"forest{i}_weight"]),
                bool(a[f"forest{i}_float32_sum"]),
            )
            for i in range(int(a["forests"]))
        )
        linear = Linear(a["linear_coef"]) if "linear_coef" in a else None
        return cls(Encoder(dfs, a["impute_means"], codes), float(a["offset"]), forests, linear)


def rows_to_arrays(rows: Sequence[Mapping], prefix: str) -> dict[str, np.ndarray]:
    """Input rows as one array per field (for reference inputs stored beside a model)."""
    return {f"{prefix}{c}": np.asarray([r[c] for r in rows]) for c in FEATURE_COLUMNS}


def arrays_to_rows(arrays: Mapping[str, np.ndarray], prefix: str) -> list[dict]:
    columns = [arrays[f"{prefix}{c}"].tolist() for c in FEATURE_COLUMNS]
    return [
        dict(zip(FEATURE_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)
    ]


# At export and again at load, the model must reproduce the full training pipeline's
# predictions on the reference rows to this many dollars.
REFERENCE_TOLERANCE = 1e-6


def reference_mismatch(model: CompiledModel, rows: Sequence[Mapping], expected) -> str | None:
    """None when `model` reproduces `expected` on `rows`; otherwise what differs."""
    got = model.predict(rows)
    expected = np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        return f"{got.shape[0]} predictions for {expected.shape[0]} reference rows"
    error = np.abs(got - expected)
    worst = int(np.argmax(error)) if len(error) else 0
    if len(error) and not error[worst] <= REFERENCE_TOLERANCE:
        return (
            f"{int((error > REFERENCE_TOLERANCE).sum())} of {len(error)} reference rows differ "
            f"by more than {REFERENCE_TOLERANCE:g}; worst: row {rows[worst]} gives "
            f"{got[worst]!r}, the training pipeline {expected[worst]!r}"
        )
    return None
