"""Export: a fitted training pipeline -> the numpy-only `CompiledModel` the service runs.

Covers every estimator the search spaces can choose: scikit-learn's GradientBoosting,
LightGBM and XGBoost boosters, a VotingRegressor blend of them, and linear models
(the baseline's ElasticNet). Anything else is refused with `UnsupportedForServing`, naming
the step. The result is checked against the full pipeline on the reference rows before it
is handed on; the service checks the same rows again when it loads the file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from insurance_pipeline.data.schema import CATEGORIES, FEATURE_COLUMNS, SMOKER_CATEGORY
from insurance_pipeline.features.numpy_dfs import DfsProgram
from insurance_pipeline.features.transformer import DFS_STEP, IMPUTE_STEP
from insurance_pipeline.modeling.intervals import ConformalInterval
from insurance_pipeline.modeling.model import FEATURES_STEP, REGRESSOR_STEP
from insurance_pipeline.serving.compiled import (
    CompiledInterval,
    CompiledModel,
    Encoder,
    Forest,
    Linear,
    reference_mismatch,
)

LINEAR_MODELS = ("ElasticNet", "Lasso", "Ridge", "LinearRegression")
LIGHTGBM_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile")
XGBOOST_OBJECTIVES = (
    "reg:squarederror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "reg:quantileerror",
)


class UnsupportedForServing(TypeError):
    """The pipeline holds something the numpy form cannot express; the message names it."""


@dataclass(frozen=True)
class _Tree:
    """One tree, nodes numbered from 0; children -1 at leaves."""

    feature: np.ndarray
    threshold: np.ndarray  # go right when x > threshold
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    float32: bool  # the library compares the float32-rounded feature


def _name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


# -- features ------------------------------------------------------------------------------


def compile_features(features) -> Encoder:
    """The fitted ColumnTransformer (DFS + imputer, then ordinal encoders) as an Encoder."""
    layout = [(n, t, c) for n, t, c in features.transformers_ if not _dropped(n, t)]
    if not layout or layout[0][0] != DFS_STEP:
        raise UnsupportedForServing(f"feature layout {[n for n, _, _ in layout]}: DFS first")
    dfs_pipeline = layout[0][1]
    dfs, impute = dfs_pipeline.named_steps[DFS_STEP], dfs_pipeline.named_steps[IMPUTE_STEP]
    if getattr(impute, "strategy", None) != "mean":
        raise UnsupportedForServing(f"imputer {_name(impute)}: only mean imputation")
    program = DfsProgram.from_spec(dfs.feature_spec_, tuple(dfs.input_columns))
    means = np.nan_to_num(np.asarray(impute.statistics_, dtype=float), nan=0.0)
    codes = []
    for name, encoder, columns in layout[1:]:
        if type(encoder).__name__ != "OrdinalEncoder":
            raise UnsupportedForServing(f"feature step {name!r} is {_name(encoder)}")
        for column, categories in zip(columns, encoder.categories_, strict=True):
            unknown = set(categories) - set(CATEGORIES[column])
            if unknown:
                raise UnsupportedForServing(f"encoder {name!r}: unknown categories {unknown}")
            codes.append((column, {str(c): float(i) for i, c in enumerate(categories)}))
    return Encoder(program, means, tuple(codes))


def _dropped(name: str, transformer) -> bool:
    return name == "remainder" and transformer == "drop"


# -- regressors ----------------------------------------------------------------------------


def _members(estimator, weight: float) -> Iterator[tuple[float, object]]:
    """(weight, estimator) for each model whose predictions are summed."""
    kind = type(estimator).__name__
    if kind == "Pipeline":
        *before, (_, last) = estimator.steps
        for name, step in before:
            if step not in (None, "passthrough"):
                raise UnsupportedForServing(f"regressor step {name!r} is {_name(step)}")
        yield from _members(last, weight)
    elif kind == "VotingRegressor":
        weights = estimator._weights_not_none or [1.0] * len(estimator.estimators_)
        total = float(sum(weights))
        for member, w in zip(estimator.estimators_, weights, strict=True):
            yield from _members(member, weight * float(w) / total)
    else:
        yield weight, estimator


def _sklearn_trees(gbr, weight: float) -> tuple[float, list[_Tree]]:
    init = gbr.init_
    if isinstance(init, str) and init == "zero":
        base = 0.0
    elif type(init).__name__ == "DummyRegressor":
        base = float(np.ravel(init.constant_)[0])
    else:
        raise UnsupportedForServing(f"GradientBoostingRegressor init {_name(init)}")
    scale = weight * gbr.learning_rate
    trees = []
    for stage in gbr.estimators_[:, 0]:
        t = stage.tree_
        leaf = t.children_left < 0
        trees.append(
            _Tree(
                feature=np.where(leaf, 0, t.feature),
                threshold=t.threshold.astype(float),
                left=t.children_left,
                right=t.children_right,
                value=np.where(leaf, t.value[:, 0, 0] * scale, 0.0),
                float32=True,
            )
        )
    return weight * base, trees


def _lightgbm_nodes(root: dict) -> list[dict]:
    """The nested tree as a list: {"node", "left", "right"} with list positions."""
    nodes: list[dict] = []

    def visit(node: dict) -> int:
        index = len(nodes)
        entry = {"node": node, "left": -1, "right": -1}
        nodes.append(entry)
        if "leaf_value" not in node:
            if node.get("decision_type") != "<=" or node.get("missing_type") == "Zero":
                raise UnsupportedForServing(
                    f"LightGBM split {node.get('decision_type')!r} with missing type "
                    f"{node.get('missing_type')!r}"
                )
            entry["left"] = visit(node["left_child"])
            entry["right"] = visit(node["right_child"])
        return index

    visit(root)
    return nodes


def _lightgbm_trees(model, weight: float) -> tuple[float, list[_Tree]]:
    dump = model.booster_.dump_model()
    objective = str(dump.get("objective", "")).split()[0]
    if objective not in LIGHTGBM_OBJECTIVES or dump.get("average_output"):
        raise UnsupportedForServing(f"LightGBM objective {dump.get('objective')!r}")
    trees = []
    for info in dump["tree_info"]:
        nodes = _lightgbm_nodes(info["tree_structure"])
        trees.append(
            _Tree(
                feature=np.array([e["node"].get("split_feature", 0) for e in nodes]),
                threshold=np.array([float(e["node"].get("threshold", np.inf)) for e in nodes]),
                left=np.array([e["left"] for e in nodes]),
                right=np.array([e["right"] for e in nodes]),
                value=np.array([e["node"].get("leaf_value", 0.0) * weight for e in nodes]),
                float32=False,
            )
        )
    return 0.0, trees


def _xgboost_trees(model) -> tuple[float, list[_Tree]]:
    """XGBoost's trees, unweighted, and its base score: it sums in float32 (see Forest)."""
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    if (
        objective not in XGBOOST_OBJECTIVES
        or config["learner"]["gradient_booster"]["name"] != "gbtree"
    ):
        raise UnsupportedForServing(f"XGBoost objective {objective!r}")
    base = float(str(config["learner"]["learner_model_param"]["base_score"]).strip("[]"))
    names = booster.feature_names
    column = {n: i for i, n in enumerate(names)} if names else None
    trees = []
    for text in booster.get_dump(dump_format="json"):
        by_id: dict[int, dict] = {}
        stack = [json.loads(text)]
        while stack:
            node = stack.pop()
            by_id[node["nodeid"]] = node
            stack.extend(node.get("children", ()))
        order = sorted(by_id)
        position = {node_id: i for i, node_id in enumerate(order)}
        nodes = [by_id[i] for i in order]

        def split_column(node: dict) -> int:
            name = node["split"]
            return column[name] if column else int(str(name).lstrip("f"))

        trees.append(
            _Tree(
                feature=np.array([split_column(n) if "leaf" not in n else 0 for n in nodes]),
                # XGBoost goes left when x < t (float32); as "right when x > t'" with t' the
                # float32 just below t, so both rules agree on every float32 x.
                threshold=np.array(
                    [
                        np.inf
                        if "leaf" in n
                        else float(
                            np.nextafter(np.float32(n["split_condition"]), np.float32(-np.inf))
                        )
                        for n in nodes
                    ]
                ),
                left=np.array([position[n["yes"]] if "leaf" not in n else -1 for n in nodes]),
                right=np.array([position[n["no"]] if "leaf" not in n else -1 for n in nodes]),
                value=np.array([n.get("leaf", 0.0) for n in nodes], dtype=float),
                float32=True,
            )
        )
    return base, trees


def _linear(model, weight: float) -> tuple[float, np.ndarray]:
    coef = np.ravel(np.asarray(model.coef_, dtype=float))
    return weight * float(np.ravel(model.intercept_)[0]), coef * weight


FLOAT64_TREES = {"GradientBoostingRegressor": _sklearn_trees, "LGBMRegressor": _lightgbm_trees}


def _forest(trees: list[_Tree], n_features: int, **summing) -> Forest:
    feature, threshold, children, value, roots = [], [], [], [], []
    start, depth = 0, 0
    for tree in trees:
        size = len(tree.feature)
        leaf = tree.left < 0
        own = np.arange(size)
        feature.append(np.where(leaf, 0, tree.feature + (n_features if tree.float32 else 0)))
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left = np.where(leaf, own, tree.left) + start
        right = np.where(leaf, own, tree.right) + start
        children.append(np.column_stack([left, right]).ravel())
        value.append(np.where(leaf, tree.value, 0.0))
        roots.append(start)
        depth = max(depth, _depth(tree))
        start += size
    return Forest(
        feature=np.concatenate(feature).astype(np.int64),
        threshold=np.concatenate(threshold).astype(np.float64),
        children=np.concatenate(children).astype(np.int64),
        value=np.concatenate(value).astype(np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        depth=depth,
        **summing,
    )


def _depth(tree: _Tree) -> int:
    deepest, level = 0, [(0, 0)]
    while level:
        node, d = level.pop()
        if tree.left[node] < 0:
            deepest = max(deepest, d)
        else:
            level += [(tree.left[node], d + 1), (tree.right[node], d + 1)]
    return deepest


def compile_regressor(
    regressor, n_features: int
) -> tuple[float, tuple[Forest, ...], Linear | None]:
    """(offset, forests, linear part): scikit-learn and LightGBM trees share one forest
    (their weights folded into the leaves); each XGBoost model gets its own."""
    offset, shared, forests, coef = 0.0, [], [], np.zeros(n_features)
    for weight, member in _members(regressor, 1.0):
        kind = type(member).__name__
        if kind in FLOAT64_TREES:
            base, trees = FLOAT64_TREES[kind](member, weight)
            shared += trees
            offset += base
        elif kind == "XGBRegressor":
            base, trees = _xgboost_trees(member)
            forests.append(_forest(trees, n_features, base=base, weight=weight, float32_sum=True))
        elif kind in LINEAR_MODELS:
            base, member_coef = _linear(member, weight)
            coef += member_coef
            offset += base
        else:
            raise UnsupportedForServing(
                f"{_name(member)} has no numpy form for serving; the search spaces "
                f"'insurance', 'boosted' and 'baseline' choose only supported models"
            )
    if shared:
        forests.insert(0, _forest(shared, n_features))
    return offset, tuple(forests), Linear(coef) if coef.any() else None


def compile_pipeline(pipeline, interval: ConformalInterval | None = None) -> CompiledModel:
    encoder = compile_features(pipeline.named_steps[FEATURES_STEP])
    offset, forests, linear = compile_regressor(
        pipeline.named_steps[REGRESSOR_STEP], encoder.n_features
    )
    compiled_interval = None
    if interval is not None:
        scale = CompiledModel(encoder, *compile_regressor(interval.scale_model, encoder.n_features))
        compiled_interval = CompiledInterval(
            level=interval.level,
            quantile=interval.quantile,
            floor=interval.scale_floor,
            scale=scale,
        )
    return CompiledModel(encoder, offset, forests, linear, interval=compiled_interval)


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
    """What the serving artifact holds: the model and the rows that prove it."""

    model: CompiledModel
    reference_inputs: list[dict]
    reference_charges: np.ndarray  # the full training pipeline's predictions
    reference_lower: np.ndarray | None = None  # MAPIE's interval, where the model has one
    reference_upper: np.ndarray | None = None


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
    return ServingExport(model, rows, expected, lower, upper)
