"""Adapter: the transformers TPOT puts before a regressor, as an affine map of the features
(`x' = x @ matrix + shift`), read through their public fitted attributes.

A linear member behind such steps folds the map into its coefficients. Trees compare
features against thresholds, so only column selections can stand before them (the map picks
columns); a scaler or a projection before a tree is refused, by name, as is every step that
is not affine (PolynomialFeatures, Normalizer, kernel approximations, …).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insurance_pipeline.core.export.trees import Member, UnsupportedForServing, type_name

SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
SELECTORS = (
    "SelectFwe",
    "SelectPercentile",
    "SelectKBest",
    "SelectFromModel",
    "VarianceThreshold",
    "RFE",
    "RFECV",
)
KINDS = SCALERS + SELECTORS + ("PCA",)


@dataclass(frozen=True)
class Affine:
    """`x' = x @ matrix + shift`, from the pipeline's input features to a step's output."""

    matrix: np.ndarray  # n_in x n_out
    shift: np.ndarray  # n_out

    @classmethod
    def identity(cls, n: int) -> Affine:
        return cls(np.eye(n), np.zeros(n))

    def then(self, step: Affine) -> Affine:
        return Affine(self.matrix @ step.matrix, self.shift @ step.matrix + step.shift)

    def columns(self) -> np.ndarray | None:
        """The input column each output is, when the map only picks columns; else None."""
        m = self.matrix
        picks = (m == 1.0).sum(axis=0) == 1
        if self.shift.any() or not picks.all() or np.count_nonzero(m) != m.shape[1]:
            return None
        return np.argmax(m, axis=0)


def step_map(name: str, step, n_in: int) -> Affine:
    """The fitted transformer `step` as an affine map of its `n_in` inputs."""
    kind = type(step).__name__
    ones, zeros = np.ones(n_in), np.zeros(n_in)
    if kind in SELECTORS:
        keep = step.get_support(indices=True)
        return Affine(np.eye(n_in)[:, keep], np.zeros(len(keep)))
    if kind == "StandardScaler":
        scale = step.scale_ if step.scale_ is not None else ones
        mean = step.mean_ if step.with_mean else zeros
        return _diagonal(1.0 / scale, -mean / scale)
    if kind == "MinMaxScaler" and not step.clip:
        return _diagonal(step.scale_, step.min_)
    if kind == "MaxAbsScaler":
        return _diagonal(1.0 / step.scale_, zeros)
    if kind == "RobustScaler":
        scale = step.scale_ if step.scale_ is not None else ones
        center = step.center_ if step.center_ is not None else zeros
        return _diagonal(1.0 / scale, -center / scale)
    if kind == "PCA":
        matrix = step.components_.T.copy()
        if step.whiten:
            matrix /= np.sqrt(step.explained_variance_)
        return Affine(matrix, -step.mean_ @ matrix)
    raise UnsupportedForServing(f"regressor step {name!r} is {type_name(step)}")


def _diagonal(scale: np.ndarray, shift: np.ndarray) -> Affine:
    return Affine(np.diag(np.asarray(scale, dtype=float)), np.asarray(shift, dtype=float))


def through(member: Member, steps: Affine, estimator) -> Member:
    """`member`, fitted on the steps' output, as a member of the pipeline's input features."""
    if member.coef is not None:
        coef = steps.matrix @ member.coef
        member = Member(
            offset=member.offset + float(steps.shift @ member.coef),
            trees=member.trees,
            coef=coef,
            float32_sum=member.float32_sum,
            base=member.base,
            weight=member.weight,
        )
    if member.trees:
        columns = steps.columns()
        if columns is None:
            raise UnsupportedForServing(
                f"{type_name(estimator)} behind a scaler or projection: trees compare the "
                "features themselves; only column selections may stand before them"
            )
        member.trees[:] = [tree.on_columns(columns) for tree in member.trees]
    return member
