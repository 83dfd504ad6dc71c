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
    interval: CompiledInterval | None = None

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

    def predict_with_interval(self, rows: Sequence[Mapping]) -> tuple[np.ndarray, ...]:
        """(charges, lower, upper) for rows; the bounds are NaN without an interval."""
        X = self.encoder.encode(rows)
        point = self.predict_features(X)
        if self.interval is None:
            nan = np.full(len(point), np.nan)
            return point, nan, nan
        half = self.interval.half_widths(X)
        return point, point - half, point + half

    def predict_one_with_interval(self, row: Mapping) -> tuple[float, float, float]:
        x = np.array(self.encoder.encode_row(row))
        point = self.predict_feature_row(x)
        if self.interval is None:
            return point, float("nan"), float("nan")
        half = self.interval.half_width_row(x)
        return point, point - half, point + half

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
            **_regressor_arrays(self, ""),
        }
        for field, table in enc.codes:
            arrays[f"codes_{field}_keys"] = np.asarray(list(table))
            arrays[f"codes_{field}_values"] = np.asarray(list(table.values()), dtype=float)
        if self.interval is not None:
            i = self.interval
            arrays |= {
                "interval_level": np.float64(i.level),
                "interval_quantile": np.float64(i.quantile),
                "interval_floor": np.float64(i.floor),
                **_regressor_arrays(i.scale, "scale_"),
            }
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
        encoder = Encoder(dfs, a["impute_means"], codes)
        interval = None
        if "interval_quantile" in a:
            interval = CompiledInterval(
                level=float(a["interval_level"]),
                quantile=float(a["interval_quantile"]),
                floor=float(a["interval_floor"]),
                scale=cls(encoder, *_regressor_from(a, "scale_")),
            )
        return cls(encoder, *_regressor_from(a, ""), interval=interval)


@dataclass(frozen=True, eq=False)
class CompiledInterval:
    """prediction ± quantile * max(scale(x), floor); `scale` reads the same features."""

    level: float
    quantile: float
    floor: float
    scale: CompiledModel

    def half_width_row(self, x: np.ndarray) -> float:
        return self.quantile * max(self.scale.predict_feature_row(x), self.floor)

    def half_widths(self, X: np.ndarray) -> np.ndarray:
        return self.quantile * np.maximum(self.scale.predict_features(X), self.floor)


def _regressor_arrays(model: CompiledModel, prefix: str) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}offset": np.float64(model.offset)}
    arrays[f"{prefix}forests"] = np.int64(len(model.forests))
    for i, f in enumerate(model.forests):
        p = f"{prefix}forest{i}_"
        arrays |= {
            f"{p}feature": f.feature,
            f"{p}threshold": f.threshold,
            f"{p}children": f.children,
            f"{p}value": f.value,
            f"{p}roots": f.roots,
            f"{p}depth": np.int64(f.depth),
            f"{p}base": np.float64(f.base),
            f"{p}weight": np.float64(f.weight),
            f"{p}float32_sum": np.bool_(f.float32_sum),
        }
    if model.linear is not None:
        arrays[f"{prefix}linear_coef"] = model.linear.coef
    return arrays


def _regressor_from(a: Mapping[str, np.ndarray], prefix: str) -> tuple:
    """(offset, forests, linear) stored under `prefix`."""
    forests = tuple(
        Forest(
            a[f"{prefix}forest{i}_feature"],
            a[f"{prefix}forest{i}_threshold"],
            a[f"{prefix}forest{i}_children"],
            a[f"{prefix}forest{i}_value"],
            a[f"{prefix}forest{i}_roots"],
            int(a[f"{prefix}forest{i}_depth"]),
            float(a[f"{prefix}forest{i}_base"]),
            float(a[f"{prefix}forest{i}_weight"]),
            bool(a[f"{prefix}forest{i}_float32_sum"]),
        )
        for i in range(int(a[f"{prefix}forests"]))
    )
    linear = Linear(a[f"{prefix}linear_coef"]) if f"{prefix}linear_coef" in a else None
    return float(a[f"{prefix}offset"]), forests, linear


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


def reference_mismatch(
    model: CompiledModel, rows: Sequence[Mapping], expected, lower=None, upper=None
) -> str | None:
    """None when `model` reproduces `expected` (and the interval bounds, when given) on
    `rows`; otherwise what differs."""
    point, low, high = model.predict_with_interval(rows)
    for name, got, want in (
        ("charges", point, expected),
        ("lower", low, lower),
        ("upper", high, upper),
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
