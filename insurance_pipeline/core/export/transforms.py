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

from insurance_pipeline.core.export.trees import Member, Tree, UnsupportedForServing, type_name

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
    # Per output column, when it is one input column through increasing elementwise steps:
    # (that column, the steps as scikit-learn computes them, e.g. (("sub", m), ("div", s)));
    # None for a column that mixes inputs (PCA) or is predicted. Trees read these exactly.
    chains: tuple | None = None

    @classmethod
    def identity(cls, n: int) -> Affine:
        return cls(np.eye(n), np.zeros(n), tuple((i, ()) for i in range(n)))

    def then(self, step: Affine) -> Affine:
        chains = None
        if self.chains is not None and step.chains is not None:
            chains = tuple(
                None
                if link is None or self.chains[link[0]] is None
                else (self.chains[link[0]][0], self.chains[link[0]][1] + link[1])
                for link in step.chains
            )
        return Affine(self.matrix @ step.matrix, self.shift @ step.matrix + step.shift, chains)


def step_map(name: str, step, n_in: int) -> Affine:
    """The fitted transformer `step` as an affine map of its `n_in` inputs."""
    kind = type(step).__name__
    ones, zeros = np.ones(n_in), np.zeros(n_in)
    if kind in SELECTORS:
        keep = step.get_support(indices=True)
        return Affine(np.eye(n_in)[:, keep], np.zeros(len(keep)), tuple((int(k), ()) for k in keep))
    if kind == "StandardScaler":
        scale = step.scale_ if step.scale_ is not None else ones
        mean = step.mean_ if step.with_mean else zeros
        ops = (("sub", mean),) * step.with_mean + (("div", scale),) * (step.scale_ is not None)
        return _diagonal(1.0 / scale, -mean / scale, ops)
    if kind == "MinMaxScaler" and not step.clip:
        return _diagonal(step.scale_, step.min_, (("mul", step.scale_), ("add", step.min_)))
    if kind == "MaxAbsScaler":
        return _diagonal(1.0 / step.scale_, zeros, (("div", step.scale_),))
    if kind == "RobustScaler":
        scale = step.scale_ if step.scale_ is not None else ones
        center = step.center_ if step.center_ is not None else zeros
        ops = (("sub", center),) * (step.center_ is not None) + (("div", scale),) * (
            step.scale_ is not None
        )
        return _diagonal(1.0 / scale, -center / scale, ops)
    if kind == "PCA":
        matrix = step.components_.T.copy()
        if step.whiten:
            matrix /= np.sqrt(step.explained_variance_)
        return Affine(matrix, -step.mean_ @ matrix)
    raise UnsupportedForServing(f"regressor step {name!r} is {type_name(step)}")


def _diagonal(scale: np.ndarray, shift: np.ndarray, ops: tuple) -> Affine:
    """A per-column scaling; `ops` the elementwise steps scikit-learn takes, in its order.
    A column whose multiplier is not positive is no increasing chain (trees cannot read it)."""
    scale = np.asarray(scale, dtype=float)
    chains = tuple(
        (j, tuple((op, float(np.ravel(v)[j])) for op, v in ops)) if scale[j] > 0 else None
        for j in range(len(scale))
    )
    return Affine(np.diag(scale), np.asarray(shift, dtype=float), chains)


_FLOAT64 = np.finfo(np.float64)
_SIGN = np.uint64(1 << 63)


def _ordered(x: np.ndarray) -> np.ndarray:
    """float64 -> uint64 keys in the floats' order (-0.0 and 0.0 alike)."""
    bits = x.view(np.uint64)
    negative = (bits & _SIGN) != 0
    return np.where(negative, _SIGN - (bits & ~_SIGN), _SIGN + bits)


def _unordered(keys: np.ndarray) -> np.ndarray:
    negative = keys < _SIGN
    bits = np.where(negative, (_SIGN - keys) | _SIGN, keys - _SIGN)
    return bits.view(np.float64)


_STEPS = {"sub": np.subtract, "div": np.divide, "mul": np.multiply, "add": np.add}


def _through_steps(x: np.ndarray, ops: tuple, float32: bool) -> np.ndarray:
    """What a tree compares for input `x`: scikit-learn's steps in float64, then (for the
    libraries that do) rounded to float32."""
    for op, value in ops:
        x = _STEPS[op](x, value)
    return x.astype(np.float32).astype(np.float64) if float32 else x


def raw_thresholds(thresholds: np.ndarray, ops: tuple, float32: bool = True) -> np.ndarray:
    """For each threshold t, the largest float64 input x whose transformed, float32-rounded
    value is still <= t: a node that went left for `step(x) <= t` goes left for `x <= T`
    exactly, since every step is increasing. Found by bisection over the floats' order."""
    t = np.asarray(thresholds, dtype=np.float64)
    low = np.full(t.shape, _ordered(np.array([-_FLOAT64.max]))[0])
    high = np.full(t.shape, _ordered(np.array([_FLOAT64.max]))[0])
    left = lambda keys: _through_steps(_unordered(keys), ops, float32) <= t  # noqa: E731
    none, every = ~left(low), left(high)
    while np.any(high - low > 1):
        middle = low + (high - low) // np.uint64(2)
        goes_left = left(middle)
        low = np.where(goes_left, middle, low)
        high = np.where(goes_left, high, middle)
    found = _unordered(low)
    return np.where(none, -_FLOAT64.max, np.where(every, _FLOAT64.max, found))


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
            return Columns(Affine(np.zeros((n_in, 0)), np.zeros(0), ()), ())
        chains = [p.affine.chains for p in parts]
        return Columns(
            Affine(
                np.hstack([p.affine.matrix for p in parts]),
                np.concatenate([p.affine.shift for p in parts]),
                None if any(c is None for c in chains) else tuple(x for c in chains for x in c),
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
            Affine(np.zeros((n_in, 1)), np.zeros(1), (None,)),
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
        member.trees[:] = [_read_inputs(tree, columns, estimator) for tree in member.trees]
    return [member, *found]


def _read_inputs(tree: Tree, columns: Columns, estimator) -> Tree:
    """`tree`, which reads the columns, as a tree of the pipeline's input features: a column
    picked as it is keeps its threshold; one scaled on the way gets the input threshold that
    splits exactly where the scaled, float32-rounded value splits (`raw_thresholds`)."""
    chains = columns.affine.chains
    inner = ~(tree.left < 0)
    used = np.unique(tree.feature[inner])
    if chains is None or any(chains[j] is None for j in used):
        raise UnsupportedForServing(
            f"{type_name(estimator)} behind a projection or an inner estimator: trees can "
            "read only features selected or scaled one by one"
        )
    if all(not chains[j][1] for j in used):  # picked as they are: scikit-learn's comparison
        return tree.on_columns(np.array([c[0] if c else 0 for c in chains]))
    feature, threshold = tree.feature.copy(), tree.threshold.astype(float).copy()
    for j in used:
        nodes = inner & (tree.feature == j)
        source, ops = chains[j]
        threshold[nodes] = raw_thresholds(tree.threshold[nodes], ops, tree.float32)
        feature[nodes] = source
    return Tree(feature, threshold, tree.left, tree.right, tree.value, float32=False)
