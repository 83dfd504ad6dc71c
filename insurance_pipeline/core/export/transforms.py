"""Adapter: the transformers TPOT puts before a regressor, read through their public fitted
attributes, as the columns they hand on (`Columns`): each an affine map of the pipeline's
features (`x @ matrix[:, j] + shift[j]`) plus, for TPOT's EstimatorTransformer (and the affine
steps after it), inner estimators' predictions (their compiled members, weighted).

A linear member behind such steps folds the maps into its coefficients, and the inner
estimators' members, scaled by its coefficients, into the sum. Trees compare features against
thresholds, so only column selections can stand before them; a scaler, a projection or an
estimator's prediction before a tree is refused, by name, as is every step that is not affine
(PolynomialFeatures, Normalizer, PowerTransformer, kernel approximations, …). FeatureUnion
concatenates its branches; TPOT's Passthrough hands its input on, its SkipTransformer nothing.
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
IDENTITY = ("Passthrough",)
NOTHING = ("SkipTransformer",)


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


@dataclass(frozen=True)
class Columns:
    """The columns a chain of steps hands on: the affine part of each, and for a column that
    is an inner estimator's prediction, that estimator's members (its affine part is zero)."""

    affine: Affine
    members: tuple[tuple[Member, ...] | None, ...]

    @classmethod
    def identity(cls, n: int) -> Columns:
        return cls(Affine.identity(n), (None,) * n)

    @property
    def width(self) -> int:
        return self.affine.matrix.shape[1]

    @property
    def predicted(self) -> bool:
        return any(m is not None for m in self.members)

    def then(self, step: Affine) -> Columns:
        """The columns after an affine step: a column that mixes predicted columns carries
        their members, scaled by the step's weights."""
        members = []
        for j in range(step.matrix.shape[1]):
            mixed = [
                scaled(m, float(step.matrix[k, j]))
                for k, inner in enumerate(self.members)
                if inner is not None and step.matrix[k, j] != 0.0
                for m in inner
            ]
            members.append(tuple(mixed) or None)
        return Columns(self.affine.then(step), tuple(members))

    @staticmethod
    def joined(parts: list[Columns], n_in: int) -> Columns:
        if not parts:
            return Columns(Affine(np.zeros((n_in, 0)), np.zeros(0)), ())
        return Columns(
            Affine(
                np.hstack([p.affine.matrix for p in parts]),
                np.concatenate([p.affine.shift for p in parts]),
            ),
            tuple(m for p in parts for m in p.members),
        )


def apply_step(name: str, step, columns: Columns, members_of) -> Columns:
    """The columns after the fitted `step`; `members_of(estimator, weight, columns)` compiles
    an inner estimator (TPOT's EstimatorTransformer) to members of the pipeline's features."""
    kind = type(step).__name__
    n_in = columns.affine.matrix.shape[0]
    if step in (None, "passthrough") or kind in IDENTITY:
        return columns
    if kind in NOTHING:
        return Columns.joined([], n_in)
    if kind == "Pipeline":
        for inner_name, inner in step.steps:
            columns = apply_step(f"{name}/{inner_name}", inner, columns, members_of)
        return columns
    if kind == "FeatureUnion":
        parts = [
            apply_step(f"{name}/{branch}", part, columns, members_of)
            for branch, part in step.transformer_list
            if part != "drop"
        ]
        if step.transformer_weights:
            raise UnsupportedForServing(f"regressor step {name!r}: FeatureUnion with weights")
        return Columns.joined(parts, n_in)
    if kind == "EstimatorTransformer":
        inner = step.estimator
        if step.method not in ("auto", "predict") or any(
            hasattr(inner, m) for m in ("predict_proba", "decision_function")
        ):
            raise UnsupportedForServing(
                f"regressor step {name!r}: an EstimatorTransformer of {type_name(inner)} that "
                "does not hand on its predictions"
            )
        predicted = Columns(
            Affine(np.zeros((n_in, 1)), np.zeros(1)),
            (tuple(members_of(inner, 1.0, columns)),),
        )
        return Columns.joined([predicted, columns] if step.passthrough else [predicted], n_in)
    return columns.then(step_map(name, step, columns.width))


def scaled(member: Member, factor: float) -> Member:
    """`member`'s prediction times `factor`."""
    if member.float32_sum:  # XGBoost: the float32 sum is scaled as a whole
        return Member(
            offset=member.offset * factor,
            trees=member.trees,
            coef=None if member.coef is None else member.coef * factor,
            float32_sum=True,
            base=member.base,
            weight=member.weight * factor,
        )
    return Member(
        offset=member.offset * factor,
        trees=[tree.times(factor) for tree in member.trees],
        coef=None if member.coef is None else member.coef * factor,
    )


def through(member: Member, columns: Columns, estimator) -> list[Member]:
    """`member`, fitted on the columns, as members of the pipeline's input features."""
    found = []
    if member.coef is not None:
        affine = columns.affine
        for j, inner in enumerate(columns.members):
            if inner is not None and member.coef[j] != 0.0:
                found += [scaled(m, float(member.coef[j])) for m in inner]
        member = Member(
            offset=member.offset + float(affine.shift @ member.coef),
            trees=member.trees,
            coef=affine.matrix @ member.coef,
            float32_sum=member.float32_sum,
            base=member.base,
            weight=member.weight,
        )
    if member.trees:
        picks = columns.affine.columns()
        if picks is None or columns.predicted:
            raise UnsupportedForServing(
                f"{type_name(estimator)} behind a scaler, projection or inner estimator: "
                "trees compare the features themselves; only column selections may stand "
                "before them"
            )
        member.trees[:] = [tree.on_columns(picks) for tree in member.trees]
    return [member, *found]
