"""Export: a fitted training pipeline -> the numpy-only `CompiledModel` the service runs.

One adapter per library turns a fitted estimator into the shared tree representation
(`trees`): `sklearn_trees` (GradientBoosting, RandomForest, ExtraTrees, DecisionTree),
`lightgbm_trees`, `xgboost_trees` and `linear_models`; `transforms` maps the scalers,
selectors and PCA before a regressor back onto the features. Pipelines and VotingRegressor
blends are walked here, each member weighted.
Anything else is refused with `UnsupportedForServing`, naming the step. The result is checked
against the full pipeline on the reference rows before it is handed on; the service checks
the same rows again when it loads the file.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from insurance_pipeline.compiled import native
from insurance_pipeline.compiled.dfs import DfsProgram
from insurance_pipeline.compiled.model import (
    CompiledInterval,
    CompiledModel,
    Encoder,
    Regressor,
    reference_mismatch,
)
from insurance_pipeline.compiled.npz import References
from insurance_pipeline.core.export import (
    lightgbm_trees,
    linear_models,
    sklearn_trees,
    xgboost_trees,
)
from insurance_pipeline.core.export.transforms import Columns, apply_step, through
from insurance_pipeline.core.export.trees import (
    Member,
    UnsupportedForServing,
    forest,
    type_name,
)
from insurance_pipeline.core.features.transformer import DFS_STEP, IMPUTE_STEP
from insurance_pipeline.core.modeling.intervals import ConformalInterval
from insurance_pipeline.core.modeling.pipeline import FEATURES_STEP, REGRESSOR_STEP
from insurance_pipeline.domain.schema import CATEGORIES, FEATURE_COLUMNS, SMOKER_CATEGORY

__all__ = ["ServingExport", "UnsupportedForServing", "export_pipeline", "reference_rows"]

# estimator class name -> the adapter that compiles it
ADAPTERS = {
    kind: adapter
    for adapter in (sklearn_trees, lightgbm_trees, xgboost_trees, linear_models)
    for kind in adapter.KINDS
}


# -- features ------------------------------------------------------------------------------


def compile_features(features) -> Encoder:
    """The fitted ColumnTransformer (DFS + imputer, then ordinal encoders) as an Encoder."""
    layout = [(n, t, c) for n, t, c in features.transformers_ if not _dropped(n, t)]
    if not layout or layout[0][0] != DFS_STEP:
        raise UnsupportedForServing(f"feature layout {[n for n, _, _ in layout]}: DFS first")
    dfs_pipeline = layout[0][1]
    dfs, impute = dfs_pipeline.named_steps[DFS_STEP], dfs_pipeline.named_steps[IMPUTE_STEP]
    if getattr(impute, "strategy", None) != "mean":
        raise UnsupportedForServing(f"imputer {type_name(impute)}: only mean imputation")
    program = DfsProgram.from_spec(dfs.feature_spec_, tuple(dfs.input_columns))
    means = np.nan_to_num(np.asarray(impute.statistics_, dtype=float), nan=0.0)
    codes = []
    for name, encoder, columns in layout[1:]:
        if type(encoder).__name__ != "OrdinalEncoder":
            raise UnsupportedForServing(f"feature step {name!r} is {type_name(encoder)}")
        for column, categories in zip(columns, encoder.categories_, strict=True):
            unknown = set(categories) - set(CATEGORIES[column])
            if unknown:
                raise UnsupportedForServing(f"encoder {name!r}: unknown categories {unknown}")
            codes.append((column, {str(c): float(i) for i, c in enumerate(categories)}))
    return Encoder(program, means, tuple(codes))


def _dropped(name: str, transformer) -> bool:
    return name == "remainder" and transformer == "drop"


# -- regressors ----------------------------------------------------------------------------


def _voting_weights(blend) -> list[float]:
    """The weights of the fitted members (`estimators_` leaves out dropped ones)."""
    kept = [i for i, (_, est) in enumerate(blend.estimators) if est != "drop"]
    weights = blend.weights if blend.weights is not None else [1.0] * len(blend.estimators)
    return [float(weights[i]) for i in kept]


def members_of(estimator, weight: float, columns: Columns) -> list[Member]:
    """The members whose predictions sum to `weight` times `estimator`'s, which reads
    `columns`, as members of the pipeline's input features."""
    kind = type(estimator).__name__
    if kind == "Pipeline":
        *before, (_, last) = estimator.steps
        for name, step in before:
            columns = apply_step(name, step, columns, members_of)
        return members_of(last, weight, columns)
    if kind == "VotingRegressor":
        weights = _voting_weights(estimator)
        total = sum(weights)
        return [
            m
            for member, w in zip(estimator.estimators_, weights, strict=True)
            for m in members_of(member, weight * w / total, columns)
        ]
    adapter = ADAPTERS.get(kind)
    if adapter is None:
        raise UnsupportedForServing(
            f"{type_name(estimator)} has no numpy form for serving; the search spaces "
            f"'insurance', 'boosted' and 'baseline' choose only supported models"
        )
    return through(adapter.compile_member(estimator, weight), columns, estimator)


def compile_regressor(regressor, n_features: int) -> Regressor:
    """Every member through its library's adapter (and back through the transformers before
    it); float64-summed trees share one forest, each float32-summed member (XGBoost) keeps
    its own."""
    offset, shared, forests, coef = 0.0, [], [], np.zeros(n_features)
    for member in members_of(regressor, 1.0, Columns.identity(n_features)):
        offset += member.offset
        if member.coef is not None:
            coef += member.coef
        if member.float32_sum:
            forests.append(
                forest(
                    member.trees,
                    n_features,
                    base=member.base,
                    weight=member.weight,
                    float32_sum=True,
                )
            )
        elif member.trees:
            shared += member.trees
    if shared:
        forests.insert(0, forest(shared, n_features))
    return Regressor(offset, tuple(forests), coef if coef.any() else None)


def compile_pipeline(pipeline, interval: ConformalInterval | None = None) -> CompiledModel:
    encoder = compile_features(pipeline.named_steps[FEATURES_STEP])
    regressor = compile_regressor(pipeline.named_steps[REGRESSOR_STEP], encoder.n_features)
    compiled_interval = None
    if interval is not None:
        compiled_interval = CompiledInterval(
            level=interval.level,
            quantile=interval.quantile,
            floor=interval.scale_floor,
            scale=compile_regressor(interval.scale_model, encoder.n_features),
        )
    return CompiledModel(encoder, regressor, compiled_interval)


# -- reference rows ------------------------------------------------------------------------


def reference_rows() -> list[dict]:
    """Boundary and typical inputs of the service's range: every category, children = 0
    (division by zero), bounds and values between them."""
    grid = itertools.product(
        (18, 19, 33, 47, 64, 65),
        (15.0, 22.13, 30.5, 38.07, 50.0),
        (0, 1, 3, 5),
        (False, True),
        CATEGORIES["sex"],
        CATEGORIES["region"],
    )
    return [
        dict(zip(("age", "bmi", "children", "smoker", "sex", "region"), values, strict=True))
        for values in grid
    ]


def training_frame(rows: list[dict]):
    """Service inputs as the training pipeline reads them (smoker as its category)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))
    frame["smoker"] = frame["smoker"].map(SMOKER_CATEGORY)
    return frame


@dataclass(frozen=True, eq=False)
class ServingExport:
    """What the serving artifact holds: the model and the rows that prove it (the full
    training pipeline's predictions, and MAPIE's interval where the model has one)."""

    model: CompiledModel
    references: References


def export_pipeline(pipeline, interval: ConformalInterval | None = None) -> ServingExport:
    """Compile `pipeline` (and its interval) and check it on the reference rows against the
    training pipeline's own predictions and the intervals MAPIE computes for them."""
    model = compile_pipeline(pipeline, interval)
    rows = reference_rows()
    frame = training_frame(rows)
    expected = np.asarray(pipeline.predict(frame), dtype=float)
    lower = upper = None
    if interval is not None:
        X = pipeline.named_steps[FEATURES_STEP].transform(frame)
        lower, upper = interval.bounds(expected, X)
    problem = reference_mismatch(model, rows, expected, lower, upper)
    if problem:
        raise UnsupportedForServing(f"the compiled model disagrees with the pipeline: {problem}")
    problem = native_mismatch(model, rows, expected, lower, upper)
    if problem:
        raise UnsupportedForServing(f"the native forests disagree with the pipeline: {problem}")
    return ServingExport(model, References(rows, expected, lower, upper))


def native_mismatch(model: CompiledModel, rows, expected, lower, upper) -> str | None:
    """The native forests (`compiled.native`, the C the artifact ships) checked on the
    reference rows too, where this machine has a C compiler (the service checks them again
    before it uses them, and serves numpy where it cannot build them)."""
    import tempfile
    from pathlib import Path

    if native.compiler() is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / native.SOURCE_FILE
        source.write_text(native.c_source(model))
        try:
            library = native.native_library(source, workdir=Path(tmp))
            built = native.with_library(model, library)
        except native.NativeUnavailable as error:
            return str(error)
        return reference_mismatch(built, rows, expected, lower, upper)
